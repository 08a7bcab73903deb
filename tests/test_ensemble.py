"""Tests for training the runs of one analytic setting as one ensemble: `EnsembleMLPEps` computes what its members
compute, `distill_ensemble` gives every member the weights and losses `distill` gives it alone (float64, float
rounding), and `analytic_group(ensemble=True)` writes the same results as one-by-one training."""

import copy
import json

import numpy as np
import pytest
import torch

from directcms.science.analytic import GaussianMixture, MLPEps, EnsembleMLPEps
from directcms.core.guidance import cfg_eps, null_class
from directcms.core.parameterization import ConsistencyModel
from directcms.core.schedules import timestep_grid
from directcms.core.solvers import solve_between
from directcms.science.ensemble import distill, distill_ensemble
from directcms.science.sweeps import analytic_group


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gmm3():
    "3-d mixture with random means, unequal stds and weights, 3 classes."
    means = torch.randn(5, 3, generator=gen(1), dtype=torch.float64) * 1.5
    return GaussianMixture(means, torch.tensor([0.1, 0.3, 0.2, 0.5, 0.15]), torch.tensor([1., 2., 1., 3., 1.]),
                           torch.tensor([0, 0, 1, 2, 2]))


def mlps_for(n, d=3, num_classes=3, width=16, depth=3, seed=0):
    torch.manual_seed(seed)
    return [MLPEps(d, num_classes, width=width, depth=depth).double() for _ in range(n)]


def max_weight_diff(a, b):
    return max((p - q).abs().max().item() for x, y in zip(a, b) for p, q in zip(x.parameters(), y.parameters()))


def test_ensemble_forward_equals_members():
    mlps = mlps_for(4, depth=4)
    ens = EnsembleMLPEps(mlps)
    assert ens.size == 4 and ens.p["hidden_2_weight"].shape == (4, 16, 16)
    x = torch.randn(4, 7, 3, dtype=torch.float64, generator=gen(2))
    t = torch.randint(-1, 1000, (4, 7), generator=gen(3))
    y = torch.randint(0, 4, (4, 7), generator=gen(4))                    # 3 = the null class
    out = ens(x, t, y)
    for i, m in enumerate(mlps):
        assert torch.allclose(out[i], m(x[i], t[i], y=y[i]), rtol=0, atol=1e-13)
    sub = ens(x[[3, 1]], t[[3, 1]], y[[3, 1]], members=torch.tensor([3, 1]))
    assert torch.allclose(sub, out[[3, 1]], rtol=0, atol=1e-13)
    # a loss summed over members gives each member its own gradient
    out.pow(2).sum().backward()
    for i, m in enumerate(mlps):
        m(x[i], t[i], y=y[i]).pow(2).sum().backward()
        for n, p in m.named_parameters():
            assert torch.allclose(ens.p[n.replace(".", "_")].grad[i], p.grad, rtol=1e-12, atol=1e-12)


def test_ensemble_write_to_and_checks():
    mlps = mlps_for(3)
    ens = EnsembleMLPEps(mlps)
    with torch.no_grad():
        for v in ens.p.values(): v.mul_(2)
    ens.write_to(mlps)
    again = mlps_for(3)
    assert max_weight_diff(mlps, [copy.deepcopy(m) for m in again]) > 0
    for m, m0 in zip(mlps, again):
        for p, q in zip(m.parameters(), m0.parameters()): assert torch.equal(p, 2 * q)
    with pytest.raises(ValueError): EnsembleMLPEps([])
    with pytest.raises(ValueError): EnsembleMLPEps(mlps_for(1) + mlps_for(1, width=8))
    with pytest.raises(ValueError): EnsembleMLPEps(mlps_for(1) + [mlps_for(1)[0].float()])
    with pytest.raises(ValueError): ens.write_to(mlps[:2])
    with pytest.raises(ValueError): ens(torch.zeros(2, 1, 3, dtype=torch.float64), torch.zeros(2, 1).long(),
                                        torch.zeros(2, 1).long())


def test_per_sample_grids_and_callback_are_solve_between(gmm3):
    "Rows on two grids (N = 10 and 25) in one solve_between (a grid per sample), the states its callback sees after k"
    "passes (the ensemble's k-step targets) equal solve_between on each row's own grid."
    B, ac = 30, gmm3.alphas_cumprod
    teacher = cfg_eps(gmm3.eps_model, 2.0, null_class(gmm3.num_classes))
    x = torch.randn(2 * B, 3, dtype=torch.float64, generator=gen(5))
    y = torch.randint(0, 3, (2 * B,), generator=gen(7))
    g10, g25 = timestep_grid(1000, 10), timestep_grid(1000, 25)
    grids = torch.cat([torch.cat([g10, torch.full((15,), -1)]).expand(B, 26), g25.expand(B, 26)])
    start = torch.cat([torch.randint(0, 10, (B,), generator=gen(6)), torch.randint(0, 25, (B,), generator=gen(8))])
    longest = 12
    n = (torch.tensor([10] * B + [25] * B) - start).clamp(max=longest)
    seen = {}
    end = solve_between(teacher, x, start, start + n, grids, ac, "ddim", dict(y=y),
                        callback=lambda st: seen.update({st["i"] + 1: st["x"].clone()}))
    assert sorted(seen) == list(range(1, longest + 1)) and torch.equal(seen[longest], end)
    for s in (1, 3, 7, 12):
        for rows, N, grid in ((slice(0, B), 10, g10), (slice(B, 2 * B), 25, g25)):
            ref = solve_between(teacher, x[rows], start[rows], (start[rows] + s).clamp(max=N), grid, ac, "ddim",
                                dict(y=y[rows]))
            assert torch.allclose(seen[s][rows], ref, rtol=0, atol=1e-13), (s, N)


@pytest.mark.parametrize("w", [1.0, 3.0])
def test_distill_ensemble_equals_distill(gmm3, w):
    "Members of several seeds, grids and target steps, from different initial weights, each as if trained alone."
    teacher = cfg_eps(gmm3.eps_model, w, null_class(gmm3.num_classes))
    members = [dict(N=10, k=k, seed=s) for s in (0, 7) for k in (1, 3, "all")] + [dict(N=20, k=2, seed=0),
                                                                                   dict(N=20, k="all", seed=3)]
    inits = mlps_for(len(members))
    ens_mlps = copy.deepcopy(inits)
    steps, B, lr = 6, 24, 3e-3
    ens_losses = distill_ensemble(ens_mlps, teacher, gmm3, members, steps, B, lr)
    assert len(ens_losses) == len(members) and all(len(l) == steps for l in ens_losses)
    alone = copy.deepcopy(inits)
    for m, mlp, l in zip(members, alone, ens_losses):
        l1 = distill(ConsistencyModel(mlp, gmm3.alphas_cumprod).train(), teacher, gmm3, m["N"], m["k"], steps, B, lr,
                     m["seed"])
        assert np.allclose(l, l1, rtol=1e-6, atol=0)
    assert max_weight_diff(ens_mlps, alone) < 1e-12
    assert max_weight_diff(ens_mlps, inits) > 1e-4                       # it trained


def test_distill_ensemble_edge_cases(gmm3):
    teacher = gmm3.eps_model
    mlps = mlps_for(2)
    before = copy.deepcopy(mlps)
    assert distill_ensemble(mlps, teacher, gmm3, [dict(N=10, k=1, seed=0), dict(N=10, k=2, seed=0)], 0, 8, 1e-3) == [[], []]
    assert max_weight_diff(mlps, before) == 0
    with pytest.raises(ValueError): distill_ensemble(mlps, teacher, gmm3, [dict(N=10, k=1, seed=0)], 1, 8, 1e-3)
    with pytest.raises(ValueError): distill_ensemble(mlps, teacher, gmm3, [dict(N=10, k=0, seed=0)] * 2, 1, 8, 1e-3)


def _same(a, b, path=""):
    "JSON results equal up to float rounding; wall-clock fields ignored."
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k not in ("seconds", "fit_seconds"): _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for x, y in zip(a, b): _same(x, y, path)
    elif isinstance(a, float): assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else: assert a == b, path


def test_analytic_group_ensemble_same_results_and_resumes(tmp_path):
    tiny = dict(fit_steps=5, train_steps=4, batch_size=16, num_eval=32)
    group = [dict(d=3, w=3.0, N=N, k=k, width="small", seed=s, **tiny) for s in (1, 2) for N in (10, 20) for k in (1, "all")]
    cache = tmp_path / "cache"
    one = analytic_group(group, tmp_path / "one", cache, ensemble=False)
    ens = analytic_group(group, tmp_path / "ens", cache)                   # ensemble=True is the default
    for a, b in zip(ens, one): _same(a, b)
    assert len(list((tmp_path / "ens").glob("*.json"))) == len(group)
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(p.name for p in (tmp_path / "ens").iterdir())
    with pytest.raises(ValueError): analytic_group(group + [dict(group[0], width="large")], tmp_path / "ens", cache)
    # resumable: a run whose JSON is gone is redone (alone in its ensemble), the others are read back
    files = sorted((tmp_path / "ens").glob("*.json"))
    kept = {f: f.stat().st_mtime_ns for f in files[1:]}
    files[0].unlink()
    again = analytic_group(group, tmp_path / "ens", cache)
    for a, b in zip(again, one): _same(a, b)
    assert files[0].exists() and all(f.stat().st_mtime_ns == m for f, m in kept.items())
