"""The library runs on its runtime requirements (settings.ini `requirements`): no module imports a development-only
package (fastcore, nbdev, ...) anywhere, the paper's optional packages are imported only inside the functions that
use them, and every module imports with the development packages hidden."""
import ast, configparser, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "directcms"
CFG = configparser.ConfigParser(delimiters=["="]); CFG.read(ROOT / "settings.ini")
# import names of the distributions that are not importable under their own name
IMPORT_NAME = {"scikit-learn": "sklearn", "torch-fidelity": "torch_fidelity", "pillow": "PIL"}
# what the runtime requirements bring with them (diffusers: huggingface_hub, safetensors, PIL; peft: transformers)
TRANSITIVE = {"huggingface_hub", "safetensors", "PIL", "transformers", "packaging", "yaml"}

def _names(key):
    return {IMPORT_NAME.get(n, n.replace("-", "_")) for n in
            (re.split(r"[<>=!~\[ ]", r)[0].lower() for r in CFG["DEFAULT"].get(key, "").split())}

RUNTIME, PAPER, DEV = _names("requirements"), _names("paper_requirements"), _names("dev_requirements")


def _imports(path):
    "(top-level package, at module level?) of every absolute import in a module."
    tree, out = ast.parse(path.read_text()), []
    top = {id(n) for n in tree.body} | {id(c) for n in tree.body if isinstance(n, (ast.Try, ast.If)) for c in ast.walk(n)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module: names = [node.module]
        else: continue
        out += [(n.split(".")[0], id(node) in top) for n in names]
    return out


def test_requirements_are_read():
    assert {"torch", "diffusers", "sklearn"} <= RUNTIME and {"fastcore", "nbdev"} <= DEV
    assert {"transformers", "torch_fidelity", "bitsandbytes"} == PAPER


def test_no_development_package_and_paper_packages_imported_lazily():
    allowed = set(sys.stdlib_module_names) | RUNTIME | TRANSITIVE | {"directcms"}
    problems = []
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB)
        for name, module_level in _imports(path):
            if name in DEV: problems.append(f"{rel}: imports {name}, a development requirement")
            elif name in PAPER - TRANSITIVE and module_level: problems.append(f"{rel}: imports {name} at module level")
            elif name not in allowed | PAPER: problems.append(f"{rel}: imports {name}, in no requirement")
    assert not problems, "\n".join(problems)


def _files_as_modules():
    "The dotted name of every .py file under directcms/ (subpackages included, as pkgutil must find them)."
    return sorted(".".join(("directcms",) + p.relative_to(LIB).with_suffix("").parts).removesuffix(".__init__")
                  for p in LIB.rglob("*.py"))


def test_every_module_imports_without_development_packages():
    """Every module and subpackage, found by walking the package with pkgutil, imported in a fresh interpreter in which
    fastcore, nbdev, execnb, nbformat and pytest cannot be imported; and each name of `directcms.__all__` exists."""
    code = (f"import sys, importlib, pkgutil\nBLOCK = {sorted(DEV)!r}\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in BLOCK: raise ImportError(f'{name} is a development requirement')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import directcms\n"
            "missing = [n for n in directcms.__all__ if not hasattr(directcms, n)]\n"
            "assert not missing, f'directcms.__all__ names what directcms lacks: {missing}'\n"
            "mods = ['directcms'] + [m.name for m in pkgutil.walk_packages(directcms.__path__, 'directcms.')]\n"
            "for m in mods: importlib.import_module(m)\n"
            "print('imported', len(mods), 'modules:', ' '.join(sorted(mods)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT),
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 0 and "imported" in r.stdout, r.stderr[-3000:]
    walked = r.stdout.split("modules:")[1].split()
    assert walked == _files_as_modules(), "pkgutil missed a module (a folder without __init__.py?)"
    assert {"directcms.core", "directcms.run", "directcms.science"} <= set(walked)
