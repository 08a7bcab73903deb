"""Execute library notebooks in place and keep their outputs, so what a reader sees matches the code.

    python scripts/run_notebooks.py nbs/23_sdxl.ipynb nbs/22_sdxl_eval.ipynb      # then nbdev_clean
    python scripts/run_notebooks.py --changed                                       # every notebook changed since main

Cells run as nbdev_test runs them (in the notebook's folder; `#| eval: false` and `slow` / `gpu` cells skipped, their
old outputs kept); a failing notebook is left untouched and named. Entry notebooks (train, figures, science, ...) are
papermill jobs: run those with papermill.
"""
import argparse, os, subprocess, sys, time
from pathlib import Path

def run(path: Path) -> bool:
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    nb = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    def skip(cell):
        if cell.cell_type != "code": return True
        d = getattr(cell, "directives_", {}) or {}
        return d.get("eval:", [""])[0].lower() == "false" or bool({"slow", "gpu"} & d.keys())
    shell = CaptureShell(path)
    with working_directory(path.parent):
        try: shell.run_all(nb, exc_stop=True, preproc=skip)
        except Exception:
            sys.stderr.write(shell.prettytb(fname=path) + "\n"); return False
    raw = read_nb(path)                                   # write the outputs into the notebook as stored (no directives)
    for c, done in zip(raw.cells, nb.cells):
        if c.cell_type == "code" and not skip(done): c.outputs, c.execution_count = done.outputs, None
    write_nb(raw, path)
    return True

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--changed", action="store_true", help="the numbered notebooks that differ from main")
    a = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    paths = [Path(p) for p in a.notebooks]
    if a.changed:
        out = subprocess.run(["git", "diff", "--name-only", "main", "--", "nbs"], capture_output=True, text=True).stdout.split()
        paths += [Path(p) for p in out if Path(p).name[:1].isdigit() and Path(p).exists()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing: sys.exit(f"no notebook at {missing}")
    failed = []
    for p in dict.fromkeys(paths):
        t = time.time(); ok = run(p.resolve())
        print(f"{'ok ' if ok else 'FAILED'} {p} ({time.time() - t:.0f} s)", flush=True)
        if not ok: failed.append(str(p))
    sys.exit(f"failed: {failed}" if failed else 0)
