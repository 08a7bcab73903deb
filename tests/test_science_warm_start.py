"nbs/science_warm_start.ipynb at smoke scale: per-seed rows for both warm starts and the paired report."
import csv
from pathlib import Path
import papermill as pm

ROOT = Path(__file__).resolve().parents[1]

def test_warm_start_smoke(tmp_path):
    pm.execute_notebook(str(ROOT / "nbs" / "science_warm_start.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(seeds=2, d=[2], w=[3.0], N=10, sizes=dict(fit_steps=20, train_steps=5, num_eval=128),
                                        runs_dir=str(tmp_path / "runs"), figures_dir=str(tmp_path / "figs")))
    rows = list(csv.DictReader(open(tmp_path / "figs" / "science_warm_start.csv")))
    assert len(rows) == 2 * 2 * 2                                           # starts x k x seeds
    assert {r["start"] for r in rows} == {"guided", "unguided"} and all(r["gamma_pooled"] for r in rows)
    md = (tmp_path / "figs" / "science_warm_start.md").read_text()
    assert "| 2 | 3 | unguided − guided |" in md and "w* | γ pooled" in md
