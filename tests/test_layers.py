"""The library's layers, core -> support -> presets -> runs -> results: every import in directcms/ (function-level ones
included) goes to the same layer or one below, and no module imports itself through others (no import cycle)."""
import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "directcms"

LAYERS = [   # lowest first; README.md "How the code is laid out" draws the same
    ("core", {"schedules", "solvers", "guidance", "parameterization", "losses", "sampling", "lora", "analytic",
              "distances"}),
    ("support", {"runio", "config", "digits", "digits_metrics", "image_metrics", "guidance_measures", "image_folder"}),
    ("presets", {"presets", "sdxl", "sdxl_eval"}),
    ("runs", {"training", "digits_ensemble"}),
    ("results", {"results", "science", "digits_study", "testbed", "ensemble", "sweeps", "convergence", "late_window"}),
]
LAYER = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}


def modules(lib=LIB) -> dict:
    "{module name: source} of the library's modules (generated ones aside)."
    return {p.stem: p.read_text() for p in sorted(lib.glob("*.py")) if p.stem not in ("__init__", "_modidx")}


def imports(source: str, names) -> set:
    "The library modules a module's source imports anywhere (top level, functions, classes; relative or absolute)."
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1: parts = mod.split(".") if mod else []
            elif mod == "directcms" or mod.startswith("directcms."): parts = mod.split(".")[1:]
            else: continue
            if parts: out.add(parts[0])
            else: out.update(a.name for a in node.names)          # from . import x / from directcms import x
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("directcms."))
    return out & set(names)


def graph(mods: dict) -> dict:
    return {m: imports(src, mods) - {m} for m, src in mods.items()}


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
    return [(m, n) for m, ns in g.items() for n in sorted(ns) if LAYER[n] > LAYER[m]]


def test_every_module_has_a_layer():
    missing = sorted(set(modules()) - set(LAYER))
    assert not missing, f"modules without a layer in tests/test_layers.py: {missing}"


def test_no_import_cycle():
    found = cycles(graph(modules()))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_imports_only_downward():
    bad = upward(graph(modules()))
    assert not bad, "imports to a higher layer: " + ", ".join(f"{m} ({LAYERS[LAYER[m]][0]}) imports {n} ({LAYERS[LAYER[n]][0]})"
                                                              for m, n in bad)


def test_the_checks_catch_what_they_should():
    "An upward import inside a function, and a cycle through a relative import, are both found."
    mods = modules()
    mods["sdxl"] += "\ndef _late():\n    from directcms.training import train\n"
    g = graph(mods)
    assert ("sdxl", "training") in upward(g)
    mods = modules()
    mods["runio"] += "\nfrom .results import mean_se\n"
    g = graph(mods)
    assert ("runio", "results") in upward(g)
    assert any({"runio", "results"} <= set(c) for c in cycles(g))                       # results imports runio
