"""digits_seeds.ipynb at a tiny scale trains both losses for 2 seeds, writes its table, CSV and figure, and reuses the
runs on a second call that trains nothing."""
import csv, json, os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = dict(seeds=2, budget=2, courses_dir="", overrides=dict(batch_size=8, num_eval=32, num_intervals=10))


def test_digits_seeds_notebook_smoke(tmp_path, monkeypatch):
    import papermill as pm
    # the kernel runs in tmp_path: make it import this checkout's directcms, whatever the installed one points to
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    pm.execute_notebook(str(ROOT / "nbs" / "digits_seeds.ipynb"), str(tmp_path / "d.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(**SMOKE, runs_dir=str(runs), figures_dir=str(figs)))
    for f in ("science_digits_seeds.md", "science_digits_seeds.csv", "science_digits_seeds.png"):
        assert (figs / f).stat().st_size > 200, f
    md = (figs / "science_digits_seeds.md").read_text()
    assert "over 2 seeds" in md and "Seeds used: 2 (0, 1)" in md and "NOT the main job's defaults" in md
    assert "## Verdict at 1 step" in md and "pixel FD vs teacher" in md and "-p budget 2" in md
    rows = list(csv.DictReader(open(figs / "science_digits_seeds.csv")))
    assert len(rows) == 2 * 2 * 3                                     # seeds x losses x sampling steps
    assert {r["k"] for r in rows} == {"1", "all"} and all(float(r["pixel_fd"]) >= 0 for r in rows)
    studies = sorted((runs / "science" / "digits").glob("*/digits_study.json"))
    assert len(studies) == 4
    stamps = [p.stat().st_mtime_ns for p in studies]
    trained = [json.loads(p.read_text())["train"] for p in (runs / "science" / "digits").glob("*/metrics.json")]
    assert [t.get("members") for t in trained] == [2] * 4             # each loss's 2 seeds as one batched run (the default)
    metrics = [p.stat().st_mtime_ns for p in (runs / "science" / "digits").glob("*/metrics.json")]
    pm.execute_notebook(str(ROOT / "nbs" / "digits_seeds.ipynb"), str(tmp_path / "d2.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(**SMOKE, runs_dir=str(runs), figures_dir=str(figs), train=False))
    assert [p.stat().st_mtime_ns for p in studies] == stamps           # cached measures are read, not recomputed
    assert [p.stat().st_mtime_ns for p in (runs / "science" / "digits").glob("*/metrics.json")] == metrics
