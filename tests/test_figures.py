"figures.ipynb at smoke size writes every file and a Table 1 of 9 rows (table1 and verdict themselves: nbs/44_results.ipynb)."
import csv, json
from pathlib import Path
from directcms.science.results import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
FILES = ("table1.csv", "table1.md", "samples.png", "ode_error_vs_fd.png", "training_curves.png", "README.md")

def test_figures_notebook_smoke(tmp_path):
    import papermill as pm
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    pm.execute_notebook(str(ROOT / "nbs" / "figures.ipynb"), str(tmp_path / "figures.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(seeds=1, max_steps=2, batch_size=8, num_eval=32, teacher_steps=30,
                                        num_intervals=10, eval_every=1, runs_dir=str(runs), figures_dir=str(figs)))
    for f in FILES: assert (figs / f).stat().st_size > 200, f
    rows = list(csv.DictReader(open(figs / "table1.csv")))
    assert len(rows) == 9
    assert [(r["method"], int(r["steps"])) for r in rows] == [
        (m, k) for m in ("Teacher (DDIM, k steps)", "CM", "Direct CM") for k in (1, 2, 4)]
    for c in COLUMNS: assert f"{c}_mean" in rows[0] and f"{c}_std" in rows[0]
    assert "Verdict" in (figs / "README.md").read_text()
    assert sorted(p.name for p in runs.iterdir() if p.name.startswith("digits-")) == ["digits-cm-seed0", "digits-direct-seed0"]
