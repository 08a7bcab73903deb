"""The library's layers are its subpackages, lowest first: core -> support -> presets -> run -> science. Every import in
directcms/ (function-level ones included) goes to the same layer or a lower one, no module imports itself through
others (no import cycle), no module lies outside a layer, and each notebook's number band is its module's layer."""
import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "directcms"

LAYERS = ["core", "support", "presets", "run", "science"]   # lowest first; nbs/index.ipynb "How the code is laid out"
BAND = {layer: 10 * i for i, layer in enumerate(LAYERS)}     # notebooks 00-09 core, 10-19 support, ... 40-49 science


def layer_of(module: str) -> int: return LAYERS.index(module.split(".")[0])


def modules(lib=LIB) -> dict:
    "{dotted module name below directcms: source} of the library's modules (package __init__ and generated ones aside)."
    return {".".join(p.relative_to(lib).with_suffix("").parts): p.read_text() for p in sorted(lib.rglob("*.py"))
            if p.stem not in ("__init__", "_modidx")}


def imports(name: str, source: str, names) -> set:
    "The library modules that module `name` imports anywhere (top level, functions, classes; relative or absolute)."
    package, out = name.split(".")[:-1], set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            mod = node.module.split(".") if node.module else []
            if node.level: base = package[:len(package) - node.level + 1] + mod
            elif mod[:1] == ["directcms"]: base = mod[1:]
            else: continue
            dotted = ".".join(base)
            if dotted in names: out.add(dotted)
            else: out.update(f"{dotted}.{a.name}".lstrip(".") for a in node.names)   # from .pkg import module
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".", 1)[1] for a in node.names if a.name.startswith("directcms."))
    return out & set(names)


def graph(mods: dict) -> dict:
    return {m: imports(m, src, mods) - {m} for m, src in mods.items()}


def cycles(g: dict) -> list:
    "Every import cycle found by depth-first search, as a list of modules [a, b, ..., a]."
    found, state = [], {}
    def visit(m, path):
        state[m] = "open"
        for n in sorted(g.get(m, ())):
            if state.get(n) == "open": found.append(path[path.index(n):] + [n])
            elif n not in state: visit(n, path + [n])
        state[m] = "done"
    for m in sorted(g):
        if m not in state: visit(m, [m])
    return found


def upward(g: dict) -> list:
    "(module, imported module) pairs whose import goes to a higher layer."
    return [(m, n) for m, ns in g.items() for n in sorted(ns) if layer_of(n) > layer_of(m)]


def test_every_module_is_in_a_layer():
    outside = sorted(m for m in modules() if m.split(".")[0] not in LAYERS or m.count(".") != 1)
    assert not outside, f"modules outside the layer subpackages {LAYERS}: {outside}"
    assert sorted(p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == sorted(LAYERS)


def test_no_import_cycle():
    found = cycles(graph(modules()))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_imports_only_downward():
    bad = upward(graph(modules()))
    assert not bad, "imports to a higher layer: " + ", ".join(f"{m} imports {n}" for m, n in bad)


def test_the_checks_catch_what_they_should():
    "An upward import inside a function, and a cycle through a relative import, are both found."
    mods = modules()
    mods["presets.sdxl"] += "\ndef _late():\n    from directcms.run.training import train\n"
    assert ("presets.sdxl", "run.training") in upward(graph(mods))
    mods = modules()
    mods["support.runio"] += "\nfrom ..science.results import mean_se\n"
    g = graph(mods)
    assert ("support.runio", "science.results") in upward(g)
    assert any({"support.runio", "science.results"} <= set(c) for c in cycles(g))      # results imports runio
    mods = modules()
    mods["core.solvers"] += "\nfrom ..support import config\n"
    assert ("core.solvers", "support.config") in upward(graph(mods))


def test_notebook_numbers_follow_the_layers():
    "Each exporting notebook is numbered NN_name with NN in its module's layer band, and no two share a number."
    numbers = {}
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        src = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        exp = re.search(r"#\|\s*default_exp\s+(\S+)", src)
        if not exp: assert not nb.stem[0].isdigit(), f"{nb.name} is numbered but exports nothing"; continue
        m = re.fullmatch(r"(\d\d)_[a-z0-9_]+", nb.stem)
        assert m, f"{nb.name}: an exporting notebook is named NN_name (no letter suffix)"
        band = BAND[exp.group(1).split(".")[0]]
        assert band <= int(m.group(1)) < band + 10, \
            f"{nb.name} exports {exp.group(1)}: numbers {band:02d}-{band + 9:02d}"
        assert m.group(1) not in numbers, f"{nb.name} and {numbers[m.group(1)]} share a number"
        numbers[m.group(1)] = nb.name
