"Every committed science report regenerates from its committed CSVs, and the intervals the README quotes are in those reports."
import re, shutil
from pathlib import Path
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGS = ROOT / "figures"
# lines that depend on the machine or the call, not on the CSV
VOLATILE = ("Wall time", "Written by", "Figure:")

def _stable(text):
    return [l for l in text.splitlines() if not l.startswith(VOLATILE)]

def _regenerate(tmp_path, notebook, csvs, md, **params):
    figs = tmp_path / "figs"; figs.mkdir()
    for c in csvs: shutil.copy(FIGS / c, figs / c)
    pm.execute_notebook(str(ROOT / "nbs" / notebook), str(tmp_path / "out.ipynb"), cwd=str(ROOT), kernel_name="python3",
                        progress_bar=False, parameters=dict(figures_dir=str(figs), **params))
    return (figs / md).read_text()

def test_courses_report_and_table1_regenerate_from_the_csv(tmp_path):
    new = _regenerate(tmp_path, "digits_courses.ipynb", ["science_courses.csv", "science_courses_teacher.json"],
                      "science_courses.md", train=False, runs_dir=str(tmp_path / "no-runs"))
    assert _stable(new) == _stable((FIGS / "science_courses.md").read_text())
    assert _stable((tmp_path / "figs" / "table1.md").read_text()) == _stable((FIGS / "table1.md").read_text())
    assert (tmp_path / "figs" / "table1.csv").read_text() == (FIGS / "table1.csv").read_text()

def test_guidance_report_regenerates_from_the_csvs(tmp_path):
    csvs = [p.name for p in FIGS.glob("science_*.csv") if p.stem in ("science_courses", "science_guided_start", "science_courses_w1", "science_courses_w6", "science_warm_start")]
    new = _regenerate(tmp_path, "science_guidance.ipynb", csvs, "science_guidance.md")
    assert _stable(new) == _stable((FIGS / "science_guidance.md").read_text())

def test_readme_intervals_are_in_the_reports():
    "Every '[low, high]' interval in the README's answer is printed, with its mean, by a committed report."
    readme = (ROOT / "README.md").read_text()
    reports = "\n".join(p.read_text() for p in FIGS.glob("*.md"))
    quoted = re.findall(r"(-?[\d.]+(?:e-?\d+)?) \[(-?[\d.]+(?:e-?\d+)?), (-?[\d.]+(?:e-?\d+)?)\]", readme)
    assert quoted, "the README quotes no interval"
    for mean, lo, hi in quoted:
        assert f"{mean} [{lo}, {hi}]" in reports, f"README quotes {mean} [{lo}, {hi}], which no figures/*.md prints"


def test_readme_paths_exist():
    "Every link and every repository path the README names exists."
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    paths = re.findall(r"`((?:nbs|figures|scripts|benchmarks|tests|directcms|\.ci)/[^`\s]*)`", readme)
    assert links and paths
    missing = [p for p in links + paths if not p.startswith("http") and not (ROOT / p).exists()]
    assert not missing, f"README names paths that do not exist: {missing}"
    assert len(readme.splitlines()) <= 150


def test_science_md_states_the_courses_verdict():
    "figures/science.md carries the digits courses' paragraph exactly as nbs/science.ipynb writes it from the committed CSV."
    from directcms.science.late_window import read_course_rows, convergence_paragraph
    csv_path = Path("figures") / "science_courses.csv"
    text = convergence_paragraph(read_course_rows(ROOT / csv_path), str(csv_path))
    assert "reverses with the training length" in text and text in (FIGS / "science.md").read_text()
