"""Tests for directcms.analytic: the Gaussian-mixture teacher's exact eps, the reference flow map, the exact sample
measures, the MLP student, and the library's solvers / losses / samplers running on the analytic teacher (float64)."""

import math

import pytest
import torch

from directcms.analytic import (GaussianMixture, ring_mixture, cfg_eps_at, sigma_tilde, reference_solve,
                                mean_log_likelihood, mode_coverage, sliced_wasserstein, reference_samples,
                                timestep_embedding, MLPEps, fit_to_teacher)
from directcms.schedules import alpha_sigma, bcast, timestep_grid
from directcms.solvers import solve
from directcms.guidance import cfg_eps, null_class
from directcms.parameterization import ConsistencyModel
from directcms.losses import consistency_distillation_loss
from directcms.sampling import teacher_sample, cm_sample



def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gmm():
    "2-d ring of 8 components in 4 classes with unequal weights."
    return ring_mixture(weights=torch.linspace(1, 3, 8))


@pytest.fixture(scope="module")
def gmm3():
    "3-d mixture with random means, unequal stds and weights, 3 classes of uneven size."
    g = gen(1)
    means = torch.randn(5, 3, generator=g, dtype=torch.float64) * 1.5
    return GaussianMixture(means, torch.tensor([0.1, 0.3, 0.2, 0.5, 0.15]), torch.tensor([1., 2., 1., 3., 1.]),
                           torch.tensor([0, 0, 1, 2, 2]))


# ---------------------------------------------------------------------------------------------------------------
# Exact eps and densities
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["marginal", "conditional", "null", "mixed"])
@pytest.mark.parametrize("which", ["gmm", "gmm3"])
def test_eps_is_minus_sigma_grad_log_density(case, which, request):
    m = request.getfixturevalue(which)
    B, C = 40, m.num_classes
    x = torch.randn(B, m.dim, generator=gen(2), dtype=torch.float64) * 2.5
    t = torch.cat([torch.tensor([0, 1, 999, 500]), torch.randint(0, 1000, (B - 4,), generator=gen(3))])
    y = dict(marginal=None, conditional=torch.arange(B) % C, null=torch.full((B,), C),
             mixed=torch.arange(B) % (C + 1))[case]
    a, s = alpha_sigma(t, m.alphas_cumprod)
    xg = x.clone().requires_grad_()
    grad, = torch.autograd.grad(m.log_prob_at(xg, a, s, y).sum(), xg)
    expected = -bcast(s, x) * grad
    for eps in (m.eps(x, t, m.alphas_cumprod, y), m.eps_model(x, t, y=y), m(x, t, y=y)):
        assert (eps - expected).abs().max() < 1e-5
    # far from every mean the responsibilities stay finite (logsumexp)
    far = m.eps_model(x * 1e3, t, y=y)
    assert torch.isfinite(far).all()
    # the null label means the marginal
    if case == "null":
        assert torch.allclose(m.eps_model(x, t, y=y), m.eps_model(x, t))


def test_eps_at_data_is_zero_and_dtype(gmm):
    x = torch.randn(8, 2, dtype=torch.float64)
    assert gmm.eps(x, torch.full((8,), -1), gmm.alphas_cumprod).abs().max() == 0
    assert gmm.eps_at(x, 1.0, 0.0).abs().max() == 0
    e32 = gmm.eps_model(x.float(), torch.full((8,), 10), y=torch.zeros(8, dtype=torch.long))
    assert e32.dtype == torch.float32 and torch.allclose(e32.double(), gmm.eps_model(x, torch.full((8,), 10),
                                                                                     y=torch.zeros(8).long()), atol=1e-6)


def test_eps_single_gaussian_closed_form():
    "One component N(mu, s^2 I): eps = sigma (x - alpha mu) / (alpha^2 s^2 + sigma^2)."
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    m = GaussianMixture(mu, 0.3)
    x, t = torch.randn(10, 2, dtype=torch.float64), torch.randint(0, 1000, (10,))
    a, s = alpha_sigma(t, m.alphas_cumprod)
    ref = bcast(s, x) * (x - bcast(a, x) * mu) / bcast(a**2 * 0.09 + s**2, x)
    assert torch.allclose(m.eps_model(x, t), ref, atol=1e-12)


@pytest.mark.parametrize("y", [None, 1])
def test_log_prob_normalised_and_matches_samples(gmm, y):
    "Quadrature: p integrates to 1 and the sample mean of log p matches int p log p (negative entropy)."
    n = 801
    g1 = torch.linspace(-3.5, 3.5, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g1, g1, indexing="ij"), -1).reshape(-1, 2)
    lp = gmm.log_prob(grid, y)
    h2 = (g1[1] - g1[0]) ** 2
    assert abs(lp.exp().sum() * h2 - 1) < 1e-6
    neg_entropy = (lp.exp() * lp).sum() * h2
    x, ys = gmm.sample(4000, y=y, generator=gen(4))
    lx = gmm.log_prob(x, y)
    assert abs(lx.mean() - neg_entropy) < 4 * lx.std() / math.sqrt(len(lx))
    assert abs(mean_log_likelihood(gmm, x, y) - lx.mean().item()) < 1e-12
    if y is not None:
        assert (ys == y).all()
        assert mode_coverage(gmm, x, ys)["precision"] > 0.97        # near a component of their own class


def test_sample_moments(gmm3):
    x, y = gmm3.sample(20000, generator=gen(5))
    w, mu, s = gmm3.weights, gmm3.means, gmm3.stds
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None] * (mu**2 + s[:, None] ** 2)).sum(0)
    sd = (second - mean**2).sqrt()
    assert ((x.mean(0) - mean).abs() < 4 * sd / math.sqrt(len(x))).all()
    freq = torch.bincount(y, minlength=3).double() / len(y)
    assert torch.allclose(freq, gmm3.class_weights, atol=0.02)
    assert torch.equal(gmm3.sample(7, generator=gen(6))[0], gmm3.sample(7, generator=gen(6))[0])


def test_validation():
    with pytest.raises(ValueError): GaussianMixture(torch.zeros(2, 2), torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError): GaussianMixture(torch.zeros(2, 2), 0.1, labels=torch.tensor([0, 2]), num_classes=2)
    with pytest.raises(ValueError): GaussianMixture(torch.zeros(2, 2), 0.1, labels=torch.tensor([0, 0]), num_classes=2)
    m = ring_mixture()
    with pytest.raises(ValueError): m.eps_model(torch.zeros(2, 2), torch.zeros(2).long(), y=torch.tensor([5, 0]))
    with pytest.raises(ValueError): m.eps_model(torch.zeros(2, 3), torch.zeros(2).long())


# ---------------------------------------------------------------------------------------------------------------
# Guidance
# ---------------------------------------------------------------------------------------------------------------

def test_guidance_with_null_class(gmm):
    x, t, y = torch.randn(12, 2, dtype=torch.float64), torch.randint(0, 1000, (12,)), torch.arange(12) % 4
    cond, marg = gmm.eps_model(x, t, y=y), gmm.eps_model(x, t)
    assert torch.equal(cfg_eps(gmm.eps_model, 1.0, null_class(4))(x, t, y=y), cond)
    assert torch.allclose(cfg_eps(gmm.eps_model, 0.0, null_class(4))(x, t, y=y), marg, atol=1e-12)
    g3 = cfg_eps(gmm.eps_model, 3.0, null_class(4))(x, t, y=y)
    assert torch.allclose(g3, marg + 3 * (cond - marg), atol=1e-12)
    a, s = alpha_sigma(t, gmm.alphas_cumprod)
    assert torch.allclose(cfg_eps_at(gmm.eps_at, 3.0, null_class(4))(x, a, s, y=y), g3, atol=1e-12)
    assert torch.equal(cfg_eps_at(gmm.eps_at, 1.0, null_class(4))(x, a, s, y=y), gmm.eps_at(x, a, s, y))


@pytest.mark.parametrize("which", ["gmm", "gmm3"])
def test_guided_eps_model_is_cfg_eps(which, request):
    "The mixture's own guided eps shares the component terms between labels: cfg_eps's numbers, to rounding."
    m = request.getfixturevalue(which)
    B, C = 50, m.num_classes
    x = torch.randn(B, m.dim, dtype=torch.float64, generator=gen(11)) * 2
    t, y = torch.randint(-1, 1000, (B,), generator=gen(12)), torch.arange(B) % (C + 1)
    for w in (0.0, 1.0, 3.0, 9.0):
        assert torch.allclose(m.guided_eps_model(w)(x, t, y=y), cfg_eps(m.eps_model, w, null_class(C))(x, t, y=y),
                              rtol=1e-14, atol=1e-14)                      # rounding: vectorised vs tail lanes
    assert m.guided_eps_model(1.0) == m.eps_model and m.guided_eps_model(3.0).guidance_scale == 3.0
    assert torch.equal(m.guided_eps_model(3.0)(x, t), m.eps_model(x, t))        # no label: nothing to guide
    assert m.guided_eps_model(3.0)(x.float(), t, y=y).dtype == torch.float32
    with pytest.raises(ValueError): m.guided_eps_model(-1.0)


# ---------------------------------------------------------------------------------------------------------------
# Reference flow map
# ---------------------------------------------------------------------------------------------------------------

def test_reference_exact_for_a_gaussian():
    "For one component the flow map is affine: x_b = alpha_b mu + (x_a - alpha_a mu) sqrt(v_b / v_a)."
    mu = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    m = GaussianMixture(mu, 0.2)
    ac = m.alphas_cumprod
    x = torch.randn(6, 2, dtype=torch.float64, generator=gen(7))
    for ta, tb in [(999, -1), (700, 100), (100, 900)]:
        (aa, sa), (ab, sb) = alpha_sigma(torch.tensor(ta), ac), alpha_sigma(torch.tensor(tb), ac)
        va, vb = aa**2 * 0.04 + sa**2, ab**2 * 0.04 + sb**2
        exact = ab * mu + (x - aa * mu) * (vb / va).sqrt()
        ref, err = reference_solve(m.eps_at, x, ta, tb, ac)
        assert (ref - exact).abs().max() < 1e-7 and err.max() < 1e-6


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


def test_reference_error_estimate_is_honest(gmm):
    "The stated error bounds the distance to a much tighter solve, and a too small max_steps warns."
    x = torch.randn(16, 2, dtype=torch.float64, generator=gen(23))
    f = cfg_eps_at(gmm.eps_at, 3.0, null_class(4))
    cond = dict(y=torch.arange(16) % 4)
    with pytest.warns(UserWarning, match="tolerance not met"):
        rough, err_rough = reference_solve(f, x, 999, -1, gmm.alphas_cumprod, cond, min_steps=2, max_steps=4)
    tight, err_tight = reference_solve(f, x, 999, -1, gmm.alphas_cumprod, cond, rtol=1e-10, atol=1e-12)
    assert err_tight.max() < 1e-8
    assert ((rough - tight).abs().amax(1) <= err_rough + err_tight).all()


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
    assert sigma_tilde(torch.tensor(-1), gmm.alphas_cumprod) == 0


def test_ddim_approaches_reference(gmm):
    "The library's DDIM on the trailing grid converges to the reference map as N grows (guided teacher)."
    x = torch.randn(32, 2, dtype=torch.float64, generator=gen(10))
    cond = dict(y=torch.arange(32) % 4)
    ref, err = reference_solve(cfg_eps_at(gmm.eps_at, 2.0, null_class(4)), x, 999, -1, gmm.alphas_cumprod, cond,
                               rtol=1e-8, atol=1e-10)
    teacher = cfg_eps(gmm.eps_model, 2.0, null_class(4))
    errs = [(solve(teacher, x, timestep_grid(1000, N), gmm.alphas_cumprod, cond=cond) - ref).norm(dim=1).mean().item()
            for N in (10, 50, 100, 250, 500)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.2 * errs[0] and err.max() < 1e-3 * errs[-1]
    heun = teacher_sample(teacher, x, gmm.alphas_cumprod, 250, "heun", cond)
    assert (heun - ref).norm(dim=1).mean() < errs[3]           # second order does better at the same grid


# ---------------------------------------------------------------------------------------------------------------
# Sample-quality measures
# ---------------------------------------------------------------------------------------------------------------

def test_mode_coverage(gmm):
    x, y = gmm.sample(3000, generator=gen(11))
    r = 2.0
    cov = mode_coverage(gmm, x, y, r=r)
    assert cov["coverage"] == 1.0 and len(cov["counts"]) == 8
    assert abs(cov["precision"] - (1 - math.exp(-r**2 / 2))) < 0.03        # chi_2 CDF (components well separated)
    one = gmm.means[2] + 0.01 * torch.randn(50, 2, dtype=torch.float64)   # all on component 2 (class 2)
    assert mode_coverage(gmm, one)["coverage"] == 1 / 8
    assert mode_coverage(gmm, one, torch.full((50,), 2))["coverage"] == 0.5   # class 2 has components 2 and 6
    assert mode_coverage(gmm, one, torch.full((50,), 1))["precision"] == 0.0   # wrong class
    assert mode_coverage(gmm, torch.zeros(5, 2))["precision"] == 0.0


def test_sliced_wasserstein(gmm):
    a = gmm.sample(1000, generator=gen(12))[0]
    b = gmm.sample(1000, generator=gen(13))[0]
    assert sliced_wasserstein(a, a) == 0
    assert sliced_wasserstein(a, b) == sliced_wasserstein(a, b) == pytest.approx(sliced_wasserstein(b, a), rel=1e-12)
    assert sliced_wasserstein(a, b, seed=1) != sliced_wasserstein(a, b, seed=2)
    floor = sliced_wasserstein(a, b)
    assert sliced_wasserstein(a, b * 1.3) > 2 * floor
    # a pure translation by c in 1-d slices: SW_p^p = E|theta . c|^p exactly
    c = torch.tensor([0.4, -0.2], dtype=torch.float64)
    theta = torch.randn(2, 256, generator=gen(0), dtype=torch.float64)
    expected = ((c @ (theta / theta.norm(dim=0))).pow(2).mean().sqrt()).item()
    assert sliced_wasserstein(a, a + c) == pytest.approx(expected, rel=1e-9)
    assert sliced_wasserstein(a, b[:400]) < 2 * floor + 0.1                 # unequal sizes via quantiles


def test_reference_samples(gmm):
    x1, y1, noise = reference_samples(gmm, 300, guidance_scale=1.0, generator=gen(14), rtol=1e-6, atol=1e-8)
    assert x1.shape == noise.shape == (300, 2) and y1.shape == (300,) and y1.max() < 4
    exact = gmm.sample(300, y=y1, generator=gen(15))[0]
    floor = sliced_wasserstein(exact, gmm.sample(300, y=y1, generator=gen(16))[0])
    # w = 1: the ODE pushes N(0, I) at t = 999 to the data (up to the small mismatch of x_T with the true marginal)
    assert sliced_wasserstein(x1, exact) < 2 * floor
    l1, le = gmm.log_prob(x1, y1), gmm.log_prob(exact, y1)
    assert abs(l1.mean() - le.mean()) < 4 * math.sqrt((l1.var() + le.var()) / 300)
    assert abs(x1.norm(dim=1).mean() - exact.norm(dim=1).mean()) < 0.05
    assert mode_coverage(gmm, x1, y1)["coverage"] == 1.0
    x4, y4, _ = reference_samples(gmm, 300, y=y1, guidance_scale=4.0, generator=gen(14), rtol=1e-6, atol=1e-8)
    assert torch.equal(y4, y1)
    # guidance pushes samples away from the other classes: outward on the ring, off the data distribution
    assert x4.norm(dim=1).mean() > x1.norm(dim=1).mean() + 0.1


# ---------------------------------------------------------------------------------------------------------------
# MLP student and the library on the analytic teacher
# ---------------------------------------------------------------------------------------------------------------

def test_mlp_eps_interface():
    mlp = MLPEps(3, 5, width=16, depth=2)
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 10, 500, 999])
    out = mlp(x, t, y=torch.tensor([0, 1, 4, 5]))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(mlp(x, t), mlp(x, t, y=torch.full((4,), 5)))            # None = null class
    assert not torch.equal(mlp(x, t, y=torch.zeros(4).long()), mlp(x, t))
    emb = timestep_embedding(t, 8)
    assert emb.shape == (4, 8) and torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4, dtype=torch.float64))


@pytest.fixture(scope="module")
def fitted(gmm):
    torch.manual_seed(0)
    teacher = cfg_eps(gmm.eps_model, 2.0, null_class(4))
    mlp = MLPEps(2, 4, width=64, depth=3).double()
    losses = fit_to_teacher(mlp, teacher, gmm, steps=120, batch_size=128, lr=3e-3, generator=gen(17))
    return mlp, teacher, losses


def test_fit_to_teacher_reduces_loss(fitted):
    _, _, losses = fitted
    assert len(losses) == 120 and sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


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
