"""Whole-process timing of the two main-job commands from a fresh clone, where the time goes, and the machine's speed.

    python benchmarks/main_job.py                 # fresh clone of HEAD: both commands, then the phase breakdown
    python benchmarks/main_job.py --no-papermill  # only the phase breakdown (in this checkout, a fresh runs folder)

It runs, in a temporary clone with its own library first on PYTHONPATH,
    papermill nbs/train.ipynb runs/train-direct.ipynb -p loss direct
    papermill nbs/train.ipynb runs/train-cm.ipynb -p loss cm
and prints the wall-clock seconds of each and their ratio to the budget (5 minutes for the first command, 90 s for
the second, on a 2-core machine that multiplies 1024^3 fp32 matrices at about 95 GFLOP/s). Then it runs the default
Direct CM job once more in one process with timers around each phase (imports, teacher and classifier loading, the
teacher's reference, training steps, periodic evaluations, checkpoints, final evaluation, writing outputs) and prints
wall and CPU seconds per phase. Matmul GFLOP/s (1024^3 fp32 at the torch thread count that the jobs use) is printed
so that a reader can scale the numbers to another machine; timings mean something only on an otherwise idle machine
(the load average is printed).
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

BUDGETS = {"direct": 300.0, "cm": 90.0}          # seconds, from a fresh clone, on the reference slow 2-core machine
REFERENCE_GFLOPS = 95.0                          # that machine's 1024^3 fp32 matmul

def matmul_gflops(n: int = 1024, reps: int = 20) -> tuple[float, int]:
    "GFLOP/s of an n^3 fp32 matmul at torch's default thread count (what a papermill kernel uses), and that count."
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3): a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps): a @ b
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n ** 3 / best / 1e9, torch.get_num_threads()

PHASES = ("imports", "setup", "reference", "steps", "periodic evals", "checkpoints", "final eval", "writing")

def phase_breakdown(loss: str = "direct", out_dir: str | None = None, **overrides) -> dict:
    "Run the default main job in this process with timers around each phase: {phase: (wall s, CPU s)}."
    import resource
    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
    acc = {p: [0.0, 0.0] for p in PHASES}
    t_wall, t_cpu = time.perf_counter(), cpu()
    from directcms.support.config import TrainConfig
    import directcms.run.training as training; import directcms.presets.digits as presets
    import accelerate                             # imported by train() at its start: counted here
    acc["imports"] = [time.perf_counter() - t_wall, cpu() - t_cpu]
    stack = []                                    # nested timers count only in the innermost phase
    def timed(phase, fn):
        def wrapper(*a, **k):
            w, c = time.perf_counter(), cpu()
            stack.append([0.0, 0.0])
            try: return fn(*a, **k)
            finally:
                dw, dc = time.perf_counter() - w, cpu() - c
                inner = stack.pop()
                acc[phase][0] += dw - inner[0]; acc[phase][1] += dc - inner[1]
                if stack: stack[-1][0] += dw; stack[-1][1] += dc
        return wrapper
    in_final = [False]
    P = presets.DigitsPreset
    orig = dict(init=P.__init__, reference=P.reference, evaluate=training.evaluate, save=training.save_checkpoint,
                grid=training.save_sample_grid, student=P.save_student, train=training.train)
    orig["tb"] = training._tensorboard
    P.__init__ = timed("setup", orig["init"])      # teacher and classifier loaded (or trained), fixed noise
    training._tensorboard = timed("setup", orig["tb"])
    P.reference = timed("reference", orig["reference"])
    periodic, final = timed("periodic evals", orig["evaluate"]), timed("final eval", orig["evaluate"])
    training.evaluate = lambda *a, **k: (final if in_final[0] else periodic)(*a, **k)
    training.save_checkpoint = timed("checkpoints", orig["save"])
    def train_then_final(*a, **k):
        r = timed("steps", orig["train"])(*a, **k); in_final[0] = True; return r
    training.train = train_then_final
    P.save_student = timed("writing", orig["student"])
    training.save_sample_grid = timed("writing", orig["grid"])
    try:
        out_dir = out_dir or tempfile.mkdtemp(prefix="directcms-phases-")
        cfg = TrainConfig(loss=loss, output_dir=str(Path(out_dir) / f"digits-{loss}"), assets_dir=str(Path(out_dir) / "digits"),
                          **overrides)
        w, c = time.perf_counter(), cpu()
        stack.append([0.0, 0.0])
        m = training.run(cfg, progress=False)
        inner = stack.pop()
        acc["writing"][0] += time.perf_counter() - w - inner[0]; acc["writing"][1] += cpu() - c - inner[1]
    finally:
        P.__init__, P.reference, P.save_student = orig["init"], orig["reference"], orig["student"]
        training.evaluate, training.save_checkpoint, training.save_sample_grid, training.train = (
            orig["evaluate"], orig["save"], orig["grid"], orig["train"])
        training._tensorboard = orig["tb"]
    total = [time.perf_counter() - t_wall, cpu() - t_cpu]
    return dict(phases=acc, total=total, train=m["train"])

def print_breakdown(r: dict, budget: float, scale: float = 1.0):
    tw, tc = r["total"]
    print(f"{'phase':<22} {'wall s':>8} {'CPU s':>8} {'share':>6}")
    for p, (w, c) in r["phases"].items():
        print(f"{p:<22} {w:8.1f} {c:8.1f} {w / tw:6.1%}")
    print(f"{'total (one process)':<22} {tw:8.1f} {tc:8.1f}   ratio to the {budget:.0f} s budget: {tw / budget:.2f}"
          + (f" (scaled to this machine's matmul speed, {budget / scale:.0f} s: {tw * scale / budget:.2f})" if scale != 1 else ""))
    tr = r["train"]
    print(f"student steps: {tr['steps']} at {tr['sec_per_step']:.3f} s/step ({tr['teacher_evals_per_step']:.0f} guided teacher "
          f"evaluations per step)")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="repository to clone")
    ap.add_argument("--keep", action="store_true", help="keep the clone and its runs/")
    ap.add_argument("--no-papermill", action="store_true", help="only the in-process phase breakdown")
    ap.add_argument("--phases-json", help=argparse.SUPPRESS)        # internal: run the breakdown, write JSON here
    args = ap.parse_args()
    if args.phases_json:
        Path(args.phases_json).write_text(json.dumps(phase_breakdown("direct")))
        return
    gflops, threads = matmul_gflops()
    print(f"1-min load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; 1024^3 fp32 matmul {gflops:.0f} GFLOP/s "
          f"at {threads} torch threads (the budgets hold on a {REFERENCE_GFLOPS:.0f} GFLOP/s machine: scale by "
          f"{gflops / REFERENCE_GFLOPS:.2f}, i.e. here about {BUDGETS['direct'] * REFERENCE_GFLOPS / gflops:.0f} s and "
          f"{BUDGETS['cm'] * REFERENCE_GFLOPS / gflops:.0f} s)")
    tmp = Path(tempfile.mkdtemp(prefix="directcms-main-job-"))
    clone = tmp / "directcms"
    subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(clone), "OPENBLAS_NUM_THREADS": "1"}
    if not args.no_papermill:
        print(f"fresh clone in {clone}")
        rows = []
        for loss in ("direct", "cm"):
            cmd = ["papermill", "nbs/train.ipynb", f"runs/train-{loss}.ipynb", "-p", "loss", loss]
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=clone, env=env, check=True, capture_output=True)
            rows.append((loss, " ".join(cmd), time.perf_counter() - t0,
                         json.loads((clone / f"runs/digits-{loss}/metrics.json").read_text())["train"]))
        scale = gflops / REFERENCE_GFLOPS         # > 1: this machine is faster than the reference one
        print(f"{'command':<62} {'seconds':>8} {'budget':>7} {'ratio':>6} {'scaled':>7} {'student s':>10} {'s/step':>7}")
        for loss, cmd, secs, tr in rows:
            b = BUDGETS[loss]
            print(f"{cmd:<62} {secs:8.1f} {b:7.0f} {secs / b:6.2f} {secs * scale / b:7.2f} {tr['seconds']:10.1f} "
                  f"{tr['sec_per_step']:7.3f}")
        print(f"(ratio: seconds / budget; scaled: the same after scaling the seconds to the {REFERENCE_GFLOPS:.0f} GFLOP/s "
              f"machine, i.e. against budgets of {BUDGETS['direct'] / scale:.0f} s and {BUDGETS['cm'] / scale:.0f} s here)")
    out = tmp / "phases.json"
    subprocess.run([sys.executable, "benchmarks/main_job.py", "--phases-json", str(out)], cwd=clone, env=env, check=True)
    print(f"\nwhere the time goes: the default Direct CM job in one process (a fresh runs folder; no papermill kernel)")
    print_breakdown(json.loads(out.read_text()), BUDGETS["direct"], gflops / REFERENCE_GFLOPS)
    if not args.keep:
        import shutil; shutil.rmtree(tmp)

if __name__ == "__main__":
    main()
