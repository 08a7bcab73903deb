"Write README.md from nbs/index.ipynb (markdown cells as they are, code cells as python blocks): nbdev_readme without quarto."
import json, pathlib, sys
root = pathlib.Path(__file__).resolve().parents[1]
nb = json.loads((root / "nbs" / "index.ipynb").read_text())
parts = []
for c in nb["cells"]:
    src = "".join(c["source"]).strip()
    if c["cell_type"] == "markdown": parts.append(src)
    elif c["cell_type"] == "code" and src: parts.append(f"```python\n{src}\n```")
text = "<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n" + "\n\n".join(parts) + "\n"
out = root / "README.md"
if "--check" in sys.argv:
    sys.exit(0 if out.read_text() == text else "README.md differs from nbs/index.ipynb: run python .ci/readme.py")
out.write_text(text)
