"figures.ipynb at smoke size writes every file; Table 1 has 9 rows whose mean/std are over seeds."
import csv, json
from pathlib import Path
import numpy as np
import pytest
from directcms.results import COLUMNS, table1, verdict

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

def _run(loss, seed, rng):
    blk = lambda: {c: float(rng.normal(1, 0.3)) for c in COLUMNS}
    return dict(loss=loss, config=dict(seed=seed), eval={str(k): blk() for k in (1, 2, 4)},
                teacher={str(k): blk() for k in (1, 2, 4)})

def test_table1_mean_and_std_over_seeds():
    rng = np.random.default_rng(0)
    runs = [_run(loss, s, rng) for loss in ("cm", "direct") for s in range(4)]
    rows = table1(runs)
    assert len(rows) == 9
    for loss, name in (("cm", "CM"), ("direct", "Direct CM")):
        for k in (1, 2, 4):
            row = next(r for r in rows if r["method"] == name and r["steps"] == k)
            vals = [r["eval"][str(k)]["fd_teacher"] for r in runs if r["loss"] == loss]
            assert row["n_seeds"] == 4
            assert row["fd_teacher_mean"] == pytest.approx(np.mean(vals))
            assert row["fd_teacher_std"] == pytest.approx(np.std(vals, ddof=1))

def test_verdict_follows_the_numbers():
    "The verdict pairs Direct CM and CM runs by seed (results.paired_difference)."
    def runs(ode_direct, fd_direct):
        out = []
        for s in range(3):
            for loss, ode, fd in (("cm", 1.0, 10.0), ("direct", ode_direct, fd_direct)):
                b = dict(ode_error=ode + 0.01 * s, fd_teacher=fd + 0.1 * s, fd_real=fd, class_accuracy=1.0)
                out.append(dict(loss=loss, config=dict(seed=s), eval={str(k): b for k in (1, 2, 4)},
                                teacher={str(k): b for k in (1, 2, 4)}))
        return out
    assert "holds at every step count" in verdict(runs(0.5, 20.0))
    assert "holds at no step count" in verdict(runs(0.5, 5.0))
    assert "not resolved" in verdict(runs(1.0, 10.0))
