"""Whole-process timing of the two main-job commands from a fresh clone (the teacher trained by the first, reused by the second).

    python benchmarks/main_job.py            # clones this repository's HEAD into a temporary folder and runs there

It runs, in the clone and with its own library first on PYTHONPATH,
    papermill nbs/train.ipynb runs/train-direct.ipynb -p loss direct
    papermill nbs/train.ipynb runs/train-cm.ipynb -p loss cm
and prints the wall-clock minutes of each, the time the first spent training the teacher, and the ratio to the
5-minute budget. Timings mean something only on an otherwise idle machine (the load average is printed).
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="repository to clone")
    ap.add_argument("--keep", action="store_true", help="keep the clone and its runs/")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="directcms-main-job-"))
    clone = tmp / "directcms"
    subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(clone), "OPENBLAS_NUM_THREADS": "1"}
    print(f"fresh clone in {clone}; 1-min load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rows = []
    for loss in ("direct", "cm"):
        cmd = ["papermill", "nbs/train.ipynb", f"runs/train-{loss}.ipynb", "-p", "loss", loss]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=clone, env=env, check=True, capture_output=True)
        rows.append((" ".join(cmd), time.perf_counter() - t0,
                     json.loads((clone / f"runs/digits-{loss}/metrics.json").read_text())["train"]))
    teacher = json.loads((clone / "runs/digits/teacher/teacher_info.json").read_text())
    print(f"{'command':<62} {'minutes':>8} {'/ 5 min':>8} {'student s':>10} {'s/step':>7}")
    for cmd, secs, tr in rows:
        print(f"{cmd:<62} {secs / 60:8.2f} {secs / 300:8.2f} {tr['seconds']:10.1f} {tr['sec_per_step']:7.3f}")
    print(f"teacher training inside the first command: {teacher['seconds']:.0f} s ({teacher['steps']} steps)")
    if not args.keep:
        import shutil; shutil.rmtree(tmp)

if __name__ == "__main__":
    main()
