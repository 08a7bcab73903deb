"""Benchmark: the Direct CM target computed on active samples only vs. with the paper's masked loop.

The Direct CM target (Vouitsis et al. 2024, eq. 6) solves the teacher's probability-flow ODE for every
sample i from its own start ``timesteps[start[i]]`` down to data. This script computes it two ways, side
by side, and reports the teacher work and wall-clock time of each:

(a) active-only: ``directcms.core.solvers.solve_to_data``, which at grid index j evaluates the teacher only on
    the samples whose start has been reached (``start[i] <= j``);
(b) masked: the loop of the paper's code, which steps the WHOLE batch at every grid index from the
    noisiest start (``start.min()``) down to data and keeps a sample's state fixed until the loop reaches
    its start: ``x = where(start <= j, ddim_step(...), x)``. It uses ``directcms.core.solvers.ddim_step``, so
    both results must agree to float rounding (checked: max abs diff < 1e-4).

The teacher is a small class-conditional diffusers ``UNet2DModel`` (8x8, one channel, random weights,
10 classes plus the null class 10), guided by ``directcms.core.guidance.cfg_eps`` with scale w, so every guided
evaluation is one network forward on a doubled batch. Teacher work is counted with
``directcms.core.solvers.EvalCounter`` wrapped around the guided function: ``images`` is the number of guided
per-sample evaluations (each costs two rows of the network's batch). With starts drawn uniformly from
0..N-1, active-only needs about half the evaluations of the masked loop.

Timings are on CPU under ``torch.no_grad``: one warm-up run of each, then the median of ``--repeats`` runs
(``time.perf_counter``), the two methods' runs interleaved so that a load change hits both alike. The time
ratio is masked / active-only. The header prints the 1-minute load average: timings are only
meaningful on an otherwise idle machine (other processes competing for the cores make the timings swing
by up to 100x, unevenly between the two methods).

Run from the repository root:

    python benchmarks/direct_target.py
    python benchmarks/direct_target.py --batch-size 16 --intervals 20 100 --repeats 3 --guidance-scale 3
"""
from __future__ import annotations
import os
os.environ["OPENBLAS_NUM_THREADS"] = "1"   # before numpy is imported (by torch / diffusers)

import argparse
import statistics
import time

import torch
from diffusers import UNet2DModel

from directcms.core.guidance import cfg_eps, null_class
from directcms.core.schedules import alphas_cumprod_from_config, timestep_grid
from directcms.core.solvers import EvalCounter, ddim_step, solve_to_data

NUM_CLASSES, T = 10, 1000


def make_teacher(seed: int = 0) -> UNet2DModel:
    "A tiny class-conditional UNet with random weights (class NUM_CLASSES is the null class)."
    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 64),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       layers_per_block=1, norm_num_groups=8, num_class_embeds=NUM_CLASSES + 1)
    return unet.eval().requires_grad_(False)


def masked_to_data(eps_fn, x, start, timesteps, alphas_cumprod, cond):
    "The paper's loop: step the whole batch from the noisiest start to data; a sample moves once j >= its start."
    timesteps = torch.as_tensor(timesteps).long()
    B = x.shape[0]
    for j in range(int(start.min()), len(timesteps) - 1):
        s, t = timesteps[j].expand(B), timesteps[j + 1].expand(B)
        stepped = ddim_step(eps_fn, x, s, t, alphas_cumprod, **cond)
        x = torch.where((start <= j).reshape(-1, *([1] * (x.ndim - 1))), stepped, x)
    return x


def time_both(fa, fb, repeats: int) -> tuple[float, float]:
    "Median wall-clock seconds of fa and of fb over `repeats` interleaved runs, after one warm-up run of each."
    fa(); fb()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, ts in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def bench(eps_fn, alphas_cumprod, batch_size: int, N: int, repeats: int, seed: int = 0) -> dict:
    timesteps = timestep_grid(T, N)
    g = torch.Generator().manual_seed(seed + N)
    start = torch.randint(0, N, (batch_size,), generator=g)
    x = torch.randn(batch_size, 1, 8, 8, generator=g)
    cond = dict(y=torch.randint(0, NUM_CLASSES, (batch_size,), generator=g))

    ca, cm = EvalCounter(eps_fn), EvalCounter(eps_fn)
    xa = solve_to_data(ca, x, start, timesteps, alphas_cumprod, "ddim", cond)
    xm = masked_to_data(cm, x, start, timesteps, alphas_cumprod, cond)
    diff = (xa - xm).abs().max().item()
    if not diff < 1e-4:
        raise AssertionError(f"N={N}: active-only and masked targets differ by {diff:.3g} (max abs)")

    ta, tm = time_both(lambda: solve_to_data(eps_fn, x, start, timesteps, alphas_cumprod, "ddim", cond),
                       lambda: masked_to_data(eps_fn, x, start, timesteps, alphas_cumprod, cond), repeats)
    return dict(N=N, ev_a=ca.images, ev_m=cm.images, t_a=ta, t_m=tm, diff=diff)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--intervals", type=int, nargs="+", default=[20, 100], help="grid sizes N (divisors of 1000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (median reported)")
    p.add_argument("--guidance-scale", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.set_num_threads(os.cpu_count() or 2)
    unet = make_teacher(args.seed)
    eps_model = lambda x, t, y: unet(x, t, class_labels=y).sample
    eps_fn = cfg_eps(eps_model, args.guidance_scale, null_class(NUM_CLASSES))
    alphas_cumprod = alphas_cumprod_from_config()

    print(f"Direct CM target, batch {args.batch_size}, w={args.guidance_scale:g}, DDIM, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} (after 1 warm-up), "
          f"1-min load avg {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    hdr = (f"{'N':>5} {'evals active':>13} {'evals masked':>13} {'eval ratio':>11} "
           f"{'s active':>9} {'s masked':>9} {'time ratio':>11} {'max|diff|':>10}")
    print(hdr); print("-" * len(hdr))
    with torch.no_grad():
        for N in args.intervals:
            r = bench(eps_fn, alphas_cumprod, args.batch_size, N, args.repeats, args.seed)
            print(f"{r['N']:>5} {r['ev_a']:>13} {r['ev_m']:>13} {r['ev_a'] / r['ev_m']:>11.3f} "
                  f"{r['t_a']:>9.3f} {r['t_m']:>9.3f} {r['t_m'] / r['t_a']:>11.2f} {r['diff']:>10.1e}")
    print("eval ratio = active / masked; time ratio = masked / active")


if __name__ == "__main__":
    main()
