"""Benchmark: the seeds of one digits configuration trained as one batched run vs. one by one.

``directcms.run.digits_ensemble.run_members`` trains S digits runs that differ only in seed as one run: each member draws
its own examples and noise, the teacher solves every member's samples in one ``solve_between`` (one guided teacher
call per solver pass), each member takes its own loss and AdamW step. ``directcms.run.training.run`` trains one run. This
script trains the same S members both ways (both start from the teacher's weights, the preset's default setting:
batch 64, N = 20, w = 3, 500 evaluation samples), the two ways interleaved (batched, one-by-one, batched, ...) so
that a change of the shared machine's load hits both alike, and prints for CM and Direct CM at each S:

- the throughput ratio one-by-one time / batched time of the training (``training.train`` of each run: preset,
  accelerator, steps, final checkpoint; against ``digits_ensemble.train_members``), medians of the repeats, in wall
  time and in the process's CPU time (on a machine shared with other jobs the CPU time is the steadier measure; run
  it with ``--threads 1`` there: two threads per process on two busy cores stall each other);
- the largest weight difference between a member's two students, and the largest relative difference of their
  metrics (ODE error, FD to real and to the teacher, class accuracy at 1, 2 and 4 steps);
- the machine's matmul GFLOP/s (1024 x 1024 float32), the 1-minute load average before and after, the process's
  peak resident memory;
- an estimate of the 10-seed Table 1 (CM and Direct CM, 1,000 steps, an evaluation every 50 steps) from the batched
  seconds per member-step at the largest S and the measured time of one member's evaluation.

Measured (2-core machine shared with other jobs, 1-min load average 2-4.3, ``--threads 1``, 5 steps, 2 repeats, two
runs; ratios of CPU time, as wall times swung up to 10x between identical runs with two threads on the busy cores):
Direct CM 1.01-1.05x at S = 1, 1.28-1.33x at 5, 1.26-1.36x at 10 (0.73 s CPU per member-step batched against about
0.96 s alone); CM 0.94-1.05x, 1.03x, 0.99-1.09x. CM's weights bit-identical, Direct CM's within 2.8e-6 and its metrics
within 4.9e-6 (relative); peak memory 2.0 GiB. The teacher's cost is its arithmetic (a UNet forward is 30.5 MFLOP a
sample: 1.2 ms at batch 8, 0.44-0.47 ms from 128 to 1,280 on one thread), so batching saves only the small batches of
Direct CM's last passes; CM's step is mostly the student's own forward and backward. Estimate of the 10-seed Table 1
printed by these runs: 166-168 min on one thread.

Run from the repository root (about 20 minutes on 2 busy cores):

    python benchmarks/digits_ensemble.py --threads 1               # S in 1 5 10, 5 steps, 2 repeats
    python benchmarks/digits_ensemble.py --members 10 --losses direct --steps 3 --repeats 1
"""
from __future__ import annotations
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse, json, resource, shutil, statistics, tempfile, time
from pathlib import Path

import torch
from safetensors.torch import load_file

from directcms.support.config import TrainConfig
from directcms.run.digits_ensemble import train_members
from directcms.presets.digits import DigitsPreset
from directcms.run.training import build_student, evaluate, run, train, write_results


def gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps): a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def configs(root, name, loss, members, steps, assets):
    return [TrainConfig(loss=loss, seed=s, max_steps=steps, eval_every=0, checkpoint_every=steps, resume=False,
                        assets_dir=str(assets), output_dir=str(root / name / f"s{s}")).validate() for s in range(members)]


def one_by_one(cfgs):
    "training.run of each config, its training timed: (wall s, process CPU s, results)."
    wall = cpu = 0.0; res = []
    for c in cfgs:
        w0, c0 = time.perf_counter(), time.process_time()
        r = train(c, progress=False)
        wall, cpu = wall + time.perf_counter() - w0, cpu + time.process_time() - c0
        res.append(write_results(c, r["preset"], r["student"], *evaluate(c, r["preset"], r["student"], r["teacher_eps"]), r["steps"]))
    return wall, cpu, res


def batched(cfgs):
    "digits_ensemble.run_members of the configs, its training timed: (wall s, process CPU s, results)."
    w0, c0 = time.perf_counter(), time.process_time()
    r = train_members(cfgs, progress=False)
    wall, cpu, m = time.perf_counter() - w0, time.process_time() - c0, r["members"]
    return wall, cpu, [write_results(c, m.preset, s, *evaluate(c, m.preset, s, m.teacher_eps), r["steps"], 1, members=len(cfgs))
                       for c, s in zip(m.cfgs, m.students)]


def differences(cfgs_a, cfgs_b, res_a, res_b):
    "Largest |weight difference| and largest relative metric difference between the members' two runs."
    dw = dm = 0.0
    for a, b, ra, rb in zip(cfgs_a, cfgs_b, res_a, res_b):
        wa, wb = (load_file(Path(c.output_dir) / "student" / "diffusion_pytorch_model.safetensors") for c in (a, b))
        dw = max(dw, max((wa[n] - wb[n]).abs().max().item() for n in wa))
        dm = max(dm, max(abs(ra["eval"][k][m] - v) / max(abs(v), 1e-12) for k in rb["eval"] for m, v in rb["eval"][k].items()))
    return dw, dm


def eval_seconds(cfg, repeats: int = 3) -> float:
    "Median CPU seconds of one evaluation of a member (training.evaluate: 500 samples at 1, 2 and 4 steps and their metrics)."
    preset = DigitsPreset(cfg, progress=False)
    student, teacher_eps = build_student(preset, cfg)
    ts = []
    for _ in range(repeats):
        t0 = time.process_time(); evaluate(cfg, preset, student, teacher_eps); ts.append(time.process_time() - t0)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--losses", nargs="+", default=["cm", "direct"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    root = Path(tempfile.mkdtemp(prefix="digits_ensemble_"))
    assets = root / "assets"
    run(configs(root, "warm", "cm", 1, 1, assets)[0], progress=False)        # the shared assets: noise, reference
    load0 = os.getloadavg()[0]
    print(f"matmul {gflops():.0f} GFLOP/s; torch threads {torch.get_num_threads()} on {os.cpu_count()} cpus; 1-min load "
          f"average {load0:.2f}; {a.steps} steps per run, repeats {a.repeats}, digits defaults (batch 64, N = 20, 500 eval)")
    times, out = {}, {}
    for r in range(a.repeats):
        for S in a.members:
            for loss in a.losses:
                cb, co = configs(root, f"b-{loss}-{S}", loss, S, a.steps, assets), configs(root, f"o-{loss}-{S}", loss, S, a.steps, assets)
                tb, to = batched(cb), one_by_one(co)
                times.setdefault((loss, S), []).append((tb[:2], to[:2]))
                out[loss, S] = differences(cb, co, tb[2], to[2])
                print(f"  repeat {r + 1} {loss:6s} S={S:2d}: training batched {tb[0]:7.2f} s wall {tb[1]:7.2f} s CPU, one-by-one "
                      f"{to[0]:7.2f} s wall {to[1]:7.2f} s CPU: {to[0] / tb[0]:.2f}x wall, {to[1] / tb[1]:.2f}x CPU; load {os.getloadavg()[0]:.2f}", flush=True)
    print("\nloss    S  ratio (wall)  ratio (CPU)  batched CPU s/member-step  max|dweight|  max rel dmetric")
    worst = 0.0
    for (loss, S), ts in times.items():
        (wb, cb), (wo, co) = ([statistics.median(t[i][j] for t in ts) for j in (0, 1)] for i in (0, 1))
        dw, dm = out[loss, S]; worst = max(worst, dw)
        print(f"{loss:6s} {S:3d}  {wo / wb:11.2f}x {co / cb:11.2f}x  {cb / (S * a.steps):25.3f}  {dw:12.3g}  {dm:15.3g}")
    S, ev = max(a.members), eval_seconds(configs(root, "warm", "cm", 1, 1, assets)[0])
    est = sum(10 * (1000 * statistics.median(t[0][1] for t in times[loss, S]) / (S * a.steps) + 1000 // 50 * ev)
              for loss in a.losses)
    print(f"\nestimate, 10-seed Table 1 ({' + '.join(a.losses)}, 1,000 steps, evaluation every 50 steps at {ev:.2f} s "
          f"per member), batched at S={S}: {est / 60:.0f} min")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB; 1-min load average "
          f"{load0:.2f} -> {os.getloadavg()[0]:.2f}")
    shutil.rmtree(root, ignore_errors=True)
    if worst > 1e-4: raise SystemExit(f"batched and one-by-one weights differ by {worst:.3g}")


if __name__ == "__main__":
    main()
