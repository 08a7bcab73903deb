"""Benchmark: training the runs of one analytic setting as one ensemble vs. one by one.

The runs of one analytic setting (seeds x target steps k, optionally several N) share the teacher, the data
distribution and the student architecture. ``directcms.science.ensemble.distill_ensemble`` trains them as one batched model
(``directcms.science.analytic.EnsembleMLPEps``: stacked parameters, ``torch.baddbmm``; one Adam over the stacked tensors;
one teacher solve per (seed, N) whose intermediate states are the k-step targets). ``directcms.science.ensemble.distill``
trains one run. This script trains the same members both ways from the same initial weights, checks that every
member ends with the same weights and losses (float64 weights; the loss is computed in float32 as in
``directcms.core.losses.distance``), and prints the throughput ratio one-by-one time / ensemble time.

Members are seeds x k: member (seed, k) starts from ``MLPEps`` weights initialised with ``torch.manual_seed(seed)``
(the sweeps start from a student fitted to the teacher; the cost per step does not depend on the weights) and
draws its data from ``_gen(seed, 3)`` as ``distill`` does. The teacher is the exact guided Gaussian-mixture eps
(``directcms.science.testbed.analytic_teacher``, guided with scale w by ``GaussianMixture.guided_eps_model``, the same
numbers as ``cfg_eps`` at about half the work), as ``analytic_group`` uses it.

Timing runs in one process on one thread (``torch.set_num_threads(1)``), the two methods interleaved
(ensemble, one-by-one, ensemble, one-by-one, ...) so that a change of the machine's load hits both alike; the
1-minute load average is printed before and after. The ratio of the medians is the result; absolute times on a
shared machine are not.

Measured (2-core machine shared with other jobs, 1-min load average 5-10; ratios, not times, are the result):
d = 2, width 32, N = 10, 25 members: 5.1x (load 5.4-5.7, 60 steps, 2 repeats; 4.1x before the guided teacher
shared its component terms); 75 members (N in {10, 50, 100}): 4.3x; d = 16, width 32: 3.8x; width 256 (d = 2 or
64): 1.2-1.3x. Small MLPs are bound by per-operation overhead and repeated teacher solves, which batching removes;
width 256 is bound by the matmuls themselves, which batching cannot shrink on a CPU.

Run from the repository root:

    python benchmarks/analytic_ensemble.py                         # 5 seeds x k in {1, 2, 4, 8, all}, d = 2, width 32
    python benchmarks/analytic_ensemble.py --d 64 --width 256 --steps 50 --repeats 1
"""
from __future__ import annotations
import os
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import copy
import statistics
import time

import torch

from directcms.science.analytic import MLPEps
from directcms.core.parameterization import ConsistencyModel
from directcms.science.testbed import WIDTHS, analytic_teacher
from directcms.science.ensemble import distill, distill_ensemble


def parse_k(v: str):
    return v if v == "all" else int(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d", type=int, default=2)
    ap.add_argument("--width", default="small", help="small | large | an int")
    ap.add_argument("--N", type=int, nargs="+", default=[10])
    ap.add_argument("--ks", type=parse_k, nargs="+", default=[1, 2, 4, 8, "all"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--w", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    width = WIDTHS[a.width] if a.width in WIDTHS else int(a.width)
    gmm = analytic_teacher(a.d)
    teacher = gmm.guided_eps_model(a.w)          # = cfg_eps(gmm.eps_model, w, null_class(C)), as analytic_group uses it
    members = [dict(N=N, k=k, seed=s) for s in range(a.seeds) for N in a.N for k in a.ks if k == "all" or k <= N]
    inits = {}
    for s in range(a.seeds):
        torch.manual_seed(s)
        inits[s] = MLPEps(a.d, gmm.num_classes, width=width).double()
    load0 = os.getloadavg()[0]
    print(f"{len(members)} members (seeds {a.seeds} x N {a.N} x k {a.ks}), d={a.d}, width={width}, batch {a.batch_size}, "
          f"{a.steps} steps, w={a.w}; 1-min load average {load0:.2f} on {os.cpu_count()} cpus, torch threads 1")

    def ensemble():
        mlps = [copy.deepcopy(inits[m["seed"]]) for m in members]
        t0 = time.perf_counter()
        losses = distill_ensemble(mlps, teacher, gmm, members, a.steps, a.batch_size, a.lr)
        return time.perf_counter() - t0, mlps, losses

    def one_by_one():
        mlps, losses = [copy.deepcopy(inits[m["seed"]]) for m in members], []
        t0 = time.perf_counter()
        for m, mlp in zip(members, mlps):
            student = ConsistencyModel(mlp, gmm.alphas_cumprod).train()
            losses.append(distill(student, teacher, gmm, m["N"], m["k"], a.steps, a.batch_size, a.lr, m["seed"]))
        return time.perf_counter() - t0, mlps, losses

    te, to = [], []
    for r in range(a.repeats):
        t, ens_mlps, ens_losses = ensemble(); te.append(t)
        t, one_mlps, one_losses = one_by_one(); to.append(t)
        print(f"  repeat {r + 1}: ensemble {te[-1]:8.2f} s   one-by-one {to[-1]:8.2f} s   ratio {to[-1] / te[-1]:6.2f}x   "
              f"load {os.getloadavg()[0]:.2f}")
    dw = max((p - q).abs().max().item() for x, y in zip(ens_mlps, one_mlps) for p, q in zip(x.parameters(), y.parameters()))
    dl = max((abs(u - v) / max(abs(v), 1e-30) for x, y in zip(ens_losses, one_losses) for u, v in zip(x, y)), default=0.0)
    print(f"same numbers: max |weight difference| {dw:.3g}, max relative loss difference {dl:.3g}")
    me, mo = statistics.median(te), statistics.median(to)
    print(f"ensemble {me:.2f} s, one-by-one {mo:.2f} s (medians of {a.repeats}): throughput ratio {mo / me:.2f}x "
          f"at {len(members)} members; 1-min load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")
    if dw > 1e-9 or dl > 1e-5: raise SystemExit("ensemble and one-by-one training disagree")
    return mo / me


if __name__ == "__main__":
    main()
