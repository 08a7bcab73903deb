"""Checks of directcms.science.analytic that are slow or run the library end to end on the analytic teacher (float64).

What documents the module (exact eps and densities, sampling, guidance, the exact flow map of a Gaussian, the
reference's convergence and honest error estimate, DDIM approaching it, the sample measures, the MLP student) runs
as the examples of nbs/40_analytic.ipynb. Here: the reference's convergence over guidance scales and tolerances,
per-sample intervals against one-sample solves, and the distillation losses and samplers on the fitted MLP."""

import pytest
import torch

from directcms.science.analytic import ring_mixture, cfg_eps_at, reference_solve, MLPEps, fit_to_teacher
from directcms.core.schedules import timestep_grid
from directcms.core.solvers import solve
from directcms.core.guidance import cfg_eps, null_class
from directcms.core.parameterization import ConsistencyModel
from directcms.core.losses import consistency_distillation_loss
from directcms.core.sampling import teacher_sample, cm_sample


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gmm():
    "2-d ring of 8 components in 4 classes with unequal weights."
    return ring_mixture(weights=torch.linspace(1, 3, 8))


# ---------------------------------------------------------------------------------------------------------------
# Reference flow map
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [1.0, 4.0])
def test_reference_converges(gmm, w):
    "Halving the tolerances (or tightening them 100x) changes the solution by less than its stated error, per sample."
    x = torch.randn(48, 2, dtype=torch.float64, generator=gen(8)) * 1.2
    cond = dict(y=torch.arange(48) % 5)                     # includes the null class
    f = cfg_eps_at(gmm.eps_at, w, null_class(4))
    ref, err = reference_solve(f, x, 999, -1, gmm.alphas_cumprod, cond, rtol=1e-7, atol=1e-9)
    assert err.shape == (48,) and err.max() < 1e-6
    for rtol in (5e-8, 1e-9):
        ref2, err2 = reference_solve(f, x, 999, -1, gmm.alphas_cumprod, cond, rtol=rtol, atol=rtol / 100)
        assert ((ref - ref2).abs().amax(1) <= err).all()
        assert (err2 <= err).all()


def test_reference_per_sample_intervals_and_round_trip(gmm):
    x = torch.randn(6, 2, dtype=torch.float64, generator=gen(9))
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    t_from, t_to = torch.tensor([999, 800, 500, 300, 50, 0]), torch.tensor([-1, 400, -1, 299, 60, -1])
    batch, _ = reference_solve(gmm.eps_at, x, t_from, t_to, gmm.alphas_cumprod, dict(y=y))
    for i in range(6):
        one, _ = reference_solve(gmm.eps_at, x[i:i + 1], int(t_from[i]), int(t_to[i]), gmm.alphas_cumprod, dict(y=y[i:i + 1]))
        assert (one - batch[i]).abs().max() < 1e-7
    same, err = reference_solve(gmm.eps_at, x, 500, 500, gmm.alphas_cumprod)
    assert torch.allclose(same, x, atol=1e-14)
    up, _ = reference_solve(gmm.eps_at, x, 300, 900, gmm.alphas_cumprod, dict(y=y))
    back, _ = reference_solve(gmm.eps_at, up, 900, 300, gmm.alphas_cumprod, dict(y=y))
    assert (back - x).abs().max() < 1e-6


# ---------------------------------------------------------------------------------------------------------------
# The library's losses and samplers on the analytic teacher
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted(gmm):
    torch.manual_seed(0)
    teacher = cfg_eps(gmm.eps_model, 2.0, null_class(4))
    mlp = MLPEps(2, 4, width=64, depth=3).double()
    losses = fit_to_teacher(mlp, teacher, gmm, steps=120, batch_size=128, lr=3e-3, generator=gen(17))
    return mlp, teacher, losses


@pytest.mark.parametrize("target_steps", [1, 3, "all"])
@pytest.mark.parametrize("guided", [False, True])
def test_distillation_loss_runs_on_gmm(gmm, fitted, target_steps, guided):
    mlp, teacher, _ = fitted
    teacher = teacher if guided else gmm.eps_model
    student = ConsistencyModel(mlp, gmm.alphas_cumprod)
    x0, y = gmm.sample(32, generator=gen(18))
    mlp.zero_grad()
    loss, info = consistency_distillation_loss(student, student, teacher, x0, timestep_grid(1000, 10),
                                               gmm.alphas_cumprod, dict(y=y), target_steps=target_steps,
                                               generator=gen(19))
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mlp.parameters())
    start = torch.randint(0, 10, (32,), generator=gen(19))
    steps = (10 - start) if target_steps == "all" else (start + target_steps).clamp(max=10) - start
    assert info["teacher_evals"] == int(steps.sum())


def test_direct_cm_target_is_the_teacher_solution(gmm):
    "With the exact teacher and N = 500, Direct CM's target (DDIM to data) is close to the reference map."
    x = torch.randn(16, 2, dtype=torch.float64, generator=gen(20))
    cond = dict(y=torch.arange(16) % 4)
    ref, _ = reference_solve(gmm.eps_at, x, 599, -1, gmm.alphas_cumprod, cond, rtol=1e-8, atol=1e-10)
    ddim = solve(gmm.eps_model, x, torch.cat([torch.arange(599, -1, -2), torch.tensor([-1])]), gmm.alphas_cumprod,
                 cond=cond)
    assert (ddim - ref).norm(dim=1).mean() < 0.02


def test_samplers_run_on_gmm(gmm, fitted):
    mlp, teacher, _ = fitted
    noise, y = torch.randn(16, 2, dtype=torch.float64, generator=gen(21)), torch.arange(16) % 4
    xs = teacher_sample(teacher, noise, gmm.alphas_cumprod, 20, "ddim", dict(y=y))
    assert xs.shape == noise.shape and torch.isfinite(xs).all()
    student = ConsistencyModel(mlp, gmm.alphas_cumprod)
    for k in (1, 2, 4):
        out = cm_sample(student, noise, gmm.alphas_cumprod, k, 20, dict(y=y), generator=gen(22))
        assert out.shape == noise.shape and torch.isfinite(out).all()
