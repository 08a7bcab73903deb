"""nbs/digits_courses.ipynb at smoke scale: rows per seed in the CSV, the late-window report, Table 1 and figure, and a
rerun that trains nothing and reads the CSV; nbs/digits_seeds.ipynb reading the courses' students at their checkpoints."""
import csv, json, os
from pathlib import Path
import papermill as pm

ROOT = Path(__file__).resolve().parents[1]
SMOKE = dict(seeds=2, max_steps=4, eval_every=2, overrides=dict(batch_size=8, num_eval=32, num_intervals=10))

def _run(tmp_path, **kw):
    pm.execute_notebook(str(ROOT / "nbs" / "digits_courses.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False,
                        parameters={**SMOKE, "runs_dir": str(tmp_path / "runs"), "figures_dir": str(tmp_path / "figs"), **kw})

def test_courses_smoke_and_rerun_from_the_csv(tmp_path):
    _run(tmp_path)
    figs = tmp_path / "figs"
    rows = list(csv.DictReader(open(figs / "science_courses.csv")))
    # 2 seeds x 2 losses x 2 weights (raw, EMA) x 2 evaluations (step 2 in the log, step 4 at the end) x 3 sampling steps
    assert len(rows) == 48 and {r["weights"] for r in rows} == {"raw", "ema"} and {r["step"] for r in rows} == {"2", "4"}
    assert {"w_star", "gamma_mean", "recall_real", "fd_teacher"} <= set(rows[0])
    md = (figs / "science_courses.md").read_text()
    assert "(2 seeds, paired by seed)" in md and "fd_teacher: Direct CM − CM" in md and (figs / "science_courses.png").stat().st_size > 5000
    t1 = (figs / "table1.md").read_text()
    assert "| - | Teacher (DDIM, k steps) | 1 |" in t1 and "| ema | Direct CM | 4 |" in t1 and "(2 seeds)" in t1
    assert set(json.loads((figs / "science_courses_teacher.json").read_text())) >= {"1", "2", "4", "10"}
    assert len(list(csv.DictReader(open(figs / "table1.csv")))) == 3 + 2 * 2 * 3    # teacher rows, then weights x losses x steps
    _seeds_late(tmp_path)
    (tmp_path / "runs").rename(tmp_path / "gone")                             # runs gone: the CSV alone is enough
    _run(tmp_path, train=False)
    again = (figs / "science_courses.md").read_text()
    strip = lambda t: [l for l in t.splitlines() if not l.startswith(("Wall time", "matmul", "Written by"))]
    assert strip(again)[:12] == strip(md)[:12]
    assert strip((figs / "table1.md").read_text()) == strip(t1)                  # the teacher's rows from the JSON

def _seeds_late(tmp_path):
    "digits_seeds on the smoke courses: both checkpoints (steps 2 and 4), raw and EMA, measured and checked against the runs."
    figs = tmp_path / "seeds"
    pm.execute_notebook(str(ROOT / "nbs" / "digits_seeds.ipynb"), str(tmp_path / "s.ipynb"), cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(seeds=2, courses_dir=str(tmp_path / "runs" / "w3"), checkpoints=[2, 4], figures_dir=str(figs)))
    rows = list(csv.DictReader(open(figs / "science_digits_seeds.csv")))
    assert len(rows) == 2 * 2 * 2 * 3 and {r["weights"] for r in rows} == {"raw", "ema"} and {r["checkpoints"] for r in rows} == {"2 4"}
    md = (figs / "science_digits_seeds.md").read_text()
    assert "### EMA copy" in md and "### Raw weights" in md and "steps 2, 4" in md and '"checkpoints": [2, 4]' in md
    assert len(list((tmp_path / "runs" / "w3" / "cm-seed0").glob("digits_study-step*-*.json"))) == 4
