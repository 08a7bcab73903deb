"""Contract tests for directcms: solvers vs diffusers, solve_to_data, CM/Direct CM losses, CFG, parameterization,
sampling, and argument validation. Everything runs on tiny CPU tensors (float64 where the check is numerical)."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from diffusers import DDIMScheduler, LCMScheduler

from directcms.schedules import alphas_cumprod_from_config, timestep_grid, alpha_sigma, bcast
from directcms.solvers import (SOLVERS, ddim_step, euler_step, heun_step, get_solver, solve, solve_between,
                               solve_to_data, EvalCounter)
from directcms.guidance import null_class, zero_cond, cfg_eps
from directcms.parameterization import boundary_scalings, consistency_function, ConsistencyModel
from directcms.losses import distance, consistency_distillation_loss, cm_loss, direct_cm_loss
from directcms.sampling import teacher_sample, cm_timesteps, cm_sample

T = 1000
S_DATA = 0.5  # std of the Gaussian toy data N(0, S^2 I)


@pytest.fixture(scope="module")
def ac():
    return alphas_cumprod_from_config()


# ---------------------------------------------------------------------------------------------------------------
# Toy eps functions
# ---------------------------------------------------------------------------------------------------------------

def make_gauss_eps(ac, s=S_DATA, extra=0.0):
    "Closed-form eps of Gaussian data N(0, s^2 I) (optionally plus extra * tanh(x)), in x's dtype."
    def eps(x, t, **cond):
        t = torch.as_tensor(t).long()
        assert (t >= 0).all(), "the teacher must never be evaluated at data (t = -1)"
        a = bcast(ac[t], x)
        out = (1 - a).sqrt() * x / (a * s**2 + 1 - a)
        if extra: out = out + extra * torch.tanh(x)
        if "y" in cond: out = out + 0.05 * bcast(cond["y"].to(x.dtype), x) * torch.cos(x)
        return out
    return eps


def gauss_var(t, ac, s=S_DATA):
    "Marginal variance abar_t s^2 + 1 - abar_t of x_t for Gaussian data."
    a2 = alpha_sigma(t, ac)[0] ** 2
    return a2 * s**2 + 1 - a2


def exact_flow(x, t_a, t_b, ac, s=S_DATA):
    "Exact probability-flow map from t_a to t_b for Gaussian data."
    ratio = (gauss_var(t_b, ac, s) / gauss_var(t_a, ac, s)).sqrt()
    return x * (bcast(ratio, x) if ratio.ndim else ratio.to(x.dtype))


class EpsNet(nn.Module):
    "A tiny parametric eps network: depends smoothly on x and t, has trainable parameters."
    def __init__(self, w=0.3, b=0.1, dtype=torch.float64):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=dtype))
        self.b = nn.Parameter(torch.tensor(b, dtype=dtype))

    def forward(self, x, t, **cond):
        tt = bcast(torch.as_tensor(t).to(x.dtype) / T, x)
        return self.w * x + self.b * torch.tanh(x) * (1 + tt)


class RaisingNet(nn.Module):
    def forward(self, *a, **k):
        raise AssertionError("network must not be called")


# ---------------------------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------------------------

def test_timestep_grid_and_alpha_sigma(ac):
    assert timestep_grid(1000, 10).tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99, -1]
    assert timestep_grid(1000, 1).tolist() == [999, -1]
    g = timestep_grid(1000, 100)
    assert len(g) == 101 and g[-2] == 9 and g.dtype == torch.long
    a, s = alpha_sigma(torch.tensor([-1, 0, 999]), ac)
    assert a[0] == 1 and s[0] == 0
    torch.testing.assert_close(a[1:] ** 2, ac[[0, 999]])
    torch.testing.assert_close(a ** 2 + s ** 2, torch.ones(3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------------------
# 1. DDIM == diffusers DDIMScheduler (trailing, eta = 0, set_alpha_to_one)
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("N", [10, 20, 100])
def test_ddim_matches_diffusers(ac, N):
    eps_fn = make_gauss_eps(ac, extra=0.1)
    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(N), dtype=torch.float32)
    sched = DDIMScheduler(timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False,
                          beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sched.set_timesteps(N)
    grid = timestep_grid(T, N)
    assert sched.timesteps.tolist() == grid[:-1].tolist()
    ref = x.clone()
    for t in sched.timesteps:
        eps = eps_fn(ref, torch.full((len(ref),), int(t)))
        ref = sched.step(eps, t, ref, eta=0.0).prev_sample
    ours = solve(eps_fn, x, grid, ac, solver="ddim")
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # teacher_sample is the same N-step solve
    torch.testing.assert_close(teacher_sample(eps_fn, x, ac, N, "ddim"), ours, rtol=0, atol=0)
    # the result is genuinely different from the input (guards against a no-op solve)
    assert (ours - x).abs().max() > 1e-2


def test_ddim_single_step_formula(ac):
    "One DDIM step to data returns x0_hat; one step to t<0 is not evaluated at t."
    eps_fn = make_gauss_eps(ac, extra=0.1)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s, t = torch.full((3,), 499), torch.full((3,), -1)
    a_s, s_s = alpha_sigma(s, ac)
    x0 = (x - bcast(s_s, x) * eps_fn(x, s)) / bcast(a_s, x)
    torch.testing.assert_close(ddim_step(eps_fn, x, s, t, ac), x0)


# ---------------------------------------------------------------------------------------------------------------
# 2. solve_to_data / solve_between == per-sample solve; evaluation counts
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["ddim", "euler", "heun"])
def test_solve_to_data_matches_per_sample_solve(ac, solver):
    N, B = 20, 7
    grid = timestep_grid(T, N)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(B, 2, 3, dtype=torch.float64, generator=gen)
    start = torch.tensor([0, 19, 5, 12, 19, 1, 7])
    y = torch.arange(B).double()
    eps_fn = make_gauss_eps(ac, extra=0.1)
    counter = EvalCounter(eps_fn)
    out = solve_to_data(counter, x, start, grid, ac, solver=solver, cond=dict(y=y))
    for i in range(B):
        alone = solve(eps_fn, x[i:i + 1], grid[int(start[i]):], ac, solver=solver, cond=dict(y=y[i:i + 1]))
        torch.testing.assert_close(out[i:i + 1], alone, rtol=0, atol=1e-12)
    n_steps = int((N - start).sum())
    if solver in ("ddim", "euler"):
        assert counter.images == n_steps
    else:
        assert n_steps < counter.images <= 2 * n_steps
    assert counter.calls >= 1
    # the input is not modified in place
    assert torch.equal(x, torch.randn(B, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))


def test_solve_to_data_start_at_data_is_identity(ac):
    grid = timestep_grid(T, 10)
    x = torch.randn(3, 4, dtype=torch.float64)
    counter = EvalCounter(make_gauss_eps(ac))
    out = solve_to_data(counter, x, torch.tensor([10, 10, 10]), grid, ac)
    assert torch.equal(out, x) and counter.images == 0


@pytest.mark.parametrize("solver", ["ddim", "euler", "heun"])
def test_solve_between_per_sample_stop(ac, solver):
    N, B = 10, 8
    grid = timestep_grid(T, N)
    x = torch.randn(B, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    start = torch.tensor([0, 2, 3, 9, 5, 4, 0, 7])
    stop = torch.tensor([4, 2, 10, 10, 6, 9, 10, 8])
    eps_fn = make_gauss_eps(ac, extra=0.2)
    counter = EvalCounter(eps_fn)
    out = solve_between(counter, x, start, stop, grid, ac, solver=solver)
    for i in range(B):
        a, b = int(start[i]), int(stop[i])
        ref = x[i:i + 1] if a == b else solve(eps_fn, x[i:i + 1], grid[a:b + 1], ac, solver=solver)
        torch.testing.assert_close(out[i:i + 1], ref, rtol=0, atol=1e-12)
    n_steps = int((stop - start).sum())
    if solver != "heun":
        assert counter.images == n_steps
    else:
        assert n_steps < counter.images <= 2 * n_steps
    assert torch.equal(out[1], x[1])  # start == stop: untouched


def test_solvers_agree_with_exact_flow_for_small_steps(ac):
    "All three solvers approximate the exact Gaussian flow map over a short, noisy interval."
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grid = torch.arange(999, 499, -5)
    ex = exact_flow(x, grid[0], grid[-1], ac)
    for solver in SOLVERS:
        out = solve(make_gauss_eps(ac), x, grid, ac, solver)
        assert (out - ex).abs().max() < 1e-2, solver


# ---------------------------------------------------------------------------------------------------------------
# 5. Heun converges faster than Euler
# ---------------------------------------------------------------------------------------------------------------

def _fit_order(Ns, errs):
    return -np.polyfit(np.log(Ns), np.log(errs), 1)[0]


def test_heun_converges_faster_than_euler(ac):
    Ns = [10, 20, 50, 100]
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps_fn = make_gauss_eps(ac)
    errs = {"euler": [], "heun": []}
    for N in Ns:
        grid = timestep_grid(T, N)[:-1]  # 999 -> last noisy grid point
        ex = exact_flow(x, grid[0], grid[-1], ac)
        for solver in errs:
            errs[solver].append((solve(eps_fn, x, grid, ac, solver) - ex).abs().max().item())
    for solver, e in errs.items():
        assert all(a > b for a, b in zip(e, e[1:])), (solver, e)  # both converge monotonically
    assert all(h < e for h, e in zip(errs["heun"], errs["euler"]))
    p_euler, p_heun = _fit_order(Ns, errs["euler"]), _fit_order(Ns, errs["heun"])
    assert 0.8 < p_euler < 1.6, p_euler
    assert p_heun > 1.8, p_heun
    assert p_heun > p_euler + 0.5
    assert errs["heun"][0] / errs["heun"][-1] > 3 * errs["euler"][0] / errs["euler"][-1]


def test_heun_step_into_data_is_euler(ac):
    x = torch.randn(3, 2, dtype=torch.float64)
    s, t = torch.full((3,), 99), torch.full((3,), -1)
    eps_fn = make_gauss_eps(ac)
    counter = EvalCounter(eps_fn)
    torch.testing.assert_close(heun_step(counter, x, s, t, ac), euler_step(eps_fn, x, s, t, ac))
    assert counter.images == 3


# ---------------------------------------------------------------------------------------------------------------
# 3. CM and Direct CM agree one step from data; full loss reproduced by hand
# ---------------------------------------------------------------------------------------------------------------

def _models(ac):
    student = ConsistencyModel(EpsNet(0.3, 0.1), ac)
    target = ConsistencyModel(EpsNet(0.25, 0.2), ac)
    return student, target


def test_cm_equals_direct_cm_on_one_interval_grid(ac):
    grid = timestep_grid(T, 1)
    x0 = torch.randn(6, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * S_DATA
    student, target = _models(ac)
    teacher = make_gauss_eps(ac, extra=0.1)
    l_cm, d_cm = cm_loss(student, target, teacher, x0, grid, ac, generator=torch.Generator().manual_seed(7))
    l_dc, d_dc = direct_cm_loss(student, target, teacher, x0, grid, ac, generator=torch.Generator().manual_seed(7))
    assert torch.equal(l_cm, l_dc) and l_cm > 0
    assert d_cm == d_dc == dict(mean_start_index=0.0, teacher_evals=6)


def test_cm_equals_direct_cm_when_start_is_last_noisy_index(ac, monkeypatch):
    N, B = 10, 5
    grid = timestep_grid(T, N)
    x0 = torch.randn(B, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * S_DATA
    student, target = _models(ac)
    teacher = make_gauss_eps(ac, extra=0.1)

    # control: with a real random grid index most samples start far from data, and CM != Direct CM
    l1, _ = consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps=1,
                                          generator=torch.Generator().manual_seed(2))
    la, _ = consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps="all",
                                          generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(l1, la)

    real_randint = torch.randint
    def last_index(low, high, size, **kw):
        kw.pop("generator", None)
        return torch.full(size, high - 1, dtype=torch.long, device=kw.get("device", "cpu"))
    monkeypatch.setattr(torch, "randint", last_index)
    l1, d1 = consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps=1,
                                           generator=torch.Generator().manual_seed(2))
    la, da = consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps="all",
                                           generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(torch, "randint", real_randint)
    assert torch.equal(l1, la) and l1 > 0
    assert d1 == da == dict(mean_start_index=float(N - 1), teacher_evals=B)


def test_cm_and_direct_targets_by_hand(ac):
    "Targets via solve_between + ConsistencyModel: identical for start = N-1, different otherwise."
    N = 10
    grid = timestep_grid(T, N)
    teacher = make_gauss_eps(ac, extra=0.1)
    _, target = _models(ac)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    start = torch.tensor([N - 1, 3, N - 1, 0])
    stop_cm, stop_all = (start + 1).clamp(max=N), torch.full_like(start, N)
    t_cm = target(solve_between(teacher, x, start, stop_cm, grid, ac), grid[stop_cm])
    t_dc = target(solve_between(teacher, x, start, stop_all, grid, ac), grid[stop_all])
    last = start == N - 1
    assert torch.equal(t_cm[last], t_dc[last])
    assert ((t_cm[~last] - t_dc[~last]).abs().amax(1) > 1e-4).all()
    # the Direct CM target is the teacher's ODE solution itself (f = identity at data)
    torch.testing.assert_close(t_dc, solve_to_data(teacher, x, start, grid, ac), rtol=0, atol=0)


@pytest.mark.parametrize("target_steps", [1, 3, "all"])
@pytest.mark.parametrize("solver", ["ddim", "heun"])
def test_loss_reproduced_by_hand(ac, target_steps, solver):
    N, B, seed = 10, 6, 11
    grid = timestep_grid(T, N)
    x0 = torch.randn(B, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * S_DATA
    student, target = _models(ac)
    teacher = make_gauss_eps(ac, extra=0.1)
    loss, diag = consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps=target_steps,
                                               solver=solver, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, N, (B,), generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    stop = torch.full_like(start, N) if target_steps == "all" else (start + target_steps).clamp(max=N)
    a, s = alpha_sigma(grid[start], ac)
    x_t = bcast(a, x0) * x0 + bcast(s, x0) * noise
    with torch.no_grad():
        pred = student(x_t, grid[start])
        x_stop = torch.cat([solve(teacher, x_t[i:i + 1], grid[int(start[i]):int(stop[i]) + 1], ac, solver)
                            for i in range(B)])
        tgt = target(x_stop, grid[stop])
    ref = (pred - tgt).float().pow(2).flatten(1).mean(1).mean()
    torch.testing.assert_close(loss.detach(), ref, rtol=1e-5, atol=1e-7)
    assert diag["mean_start_index"] == pytest.approx(start.float().mean().item())
    n_steps = int((stop - start).sum())
    if solver == "ddim":
        assert diag["teacher_evals"] == n_steps
    else:
        assert n_steps <= diag["teacher_evals"] <= 2 * n_steps


# ---------------------------------------------------------------------------------------------------------------
# 9. Losses: gradients, diagnostics, metrics
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss_fn", [cm_loss, direct_cm_loss])
@pytest.mark.parametrize("metric", ["l2", "huber"])
def test_gradients_flow_to_student_only(ac, loss_fn, metric):
    grid = timestep_grid(T, 10)
    x0 = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * S_DATA
    student = ConsistencyModel(EpsNet(0.3, 0.1), ac)
    target = copy.deepcopy(student)
    teacher_net = EpsNet(0.5, 0.05)  # a teacher with its own (trainable-looking) parameters
    loss, diag = loss_fn(student, target, teacher_net, x0, grid, ac, metric=metric,
                         generator=torch.Generator().manual_seed(3))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    for p in student.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    for p in list(target.parameters()) + list(teacher_net.parameters()):
        assert p.grad is None
    assert set(diag) >= {"mean_start_index", "teacher_evals"}


def test_diagnostics_teacher_evals(ac):
    N, B, seed = 20, 16, 5
    grid = timestep_grid(T, N)
    x0 = torch.randn(B, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * S_DATA
    student, target = _models(ac)
    teacher = make_gauss_eps(ac)
    start = torch.randint(0, N, (B,), generator=torch.Generator().manual_seed(seed))
    _, d_cm = cm_loss(student, target, teacher, x0, grid, ac, generator=torch.Generator().manual_seed(seed))
    _, d_dc = direct_cm_loss(student, target, teacher, x0, grid, ac, generator=torch.Generator().manual_seed(seed))
    assert d_cm["teacher_evals"] == B
    assert d_dc["teacher_evals"] == int((N - start).sum())
    assert d_dc["teacher_evals"] > B  # the random starts are not all one step from data
    assert d_cm["mean_start_index"] == d_dc["mean_start_index"] == pytest.approx(start.float().mean().item())
    for solver in ("euler", "heun"):
        _, d = direct_cm_loss(student, target, teacher, x0, grid, ac, solver=solver,
                              generator=torch.Generator().manual_seed(seed))
        lim = int((N - start).sum())
        assert (d["teacher_evals"] == lim) if solver == "euler" else (lim < d["teacher_evals"] <= 2 * lim)


def test_target_network_sees_same_randomness_as_student(ac):
    "The target network's forward replays the student's RNG state (same dropout mask)."
    draws = {}
    class Noisy(nn.Module):
        def __init__(self, name):
            super().__init__(); self.name = name; self.w = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        def forward(self, x, t, **cond):
            draws[self.name] = torch.rand(3)
            return self.w * x
    grid = timestep_grid(T, 10)
    x0 = torch.randn(4, 2, dtype=torch.float64)
    consistency_distillation_loss(Noisy("student"), Noisy("target"), make_gauss_eps(ac), x0, grid, ac,
                                  target_steps=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws["student"], draws["target"])


def test_distance_metrics():
    a = torch.zeros(3, 4)
    big = torch.full((3, 4), 10.0)
    l2, hub = distance(a, big, "l2"), distance(a, big, "huber", huber_c=0.001)
    assert l2.shape == hub.shape == (3,)
    torch.testing.assert_close(l2, torch.full((3,), 100.0))
    assert torch.isfinite(hub).all() and (hub < l2).all()
    torch.testing.assert_close(hub, torch.full((3,), math.sqrt(100 + 1e-6) - 1e-3))
    # zero difference gives zero distance and finite gradients for pseudo-Huber
    b = a.clone().requires_grad_(True)
    h0 = distance(a, b, "huber")
    assert torch.equal(h0, torch.zeros(3))
    h0.sum().backward()
    assert torch.isfinite(b.grad).all()
    # huber grows linearly, l2 quadratically
    r_h = (distance(a, 2 * big, "huber") / hub).mean().item()
    r_l = (distance(a, 2 * big, "l2") / l2).mean().item()
    assert r_h == pytest.approx(2.0, rel=1e-4) and r_l == pytest.approx(4.0)


# ---------------------------------------------------------------------------------------------------------------
# 4. Parameterization
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma_data,scaling", [(0.5, 10.0), (1.0, 1.0), (0.25, 1000.0)])
def test_boundary_scalings_at_data(sigma_data, scaling):
    c_skip, c_out = boundary_scalings(-1, sigma_data, scaling)
    assert c_skip.item() == 1.0 and c_out.item() == 0.0
    c_skip, c_out = boundary_scalings(torch.tensor([-1, 0, 999]), sigma_data, scaling)
    assert c_skip[0].item() == 1.0 and c_out[0].item() == 0.0
    assert (c_skip[1:] < 1).all() and (c_out[1:] > 0).all()


def test_boundary_scalings_default_values():
    c_skip, c_out = boundary_scalings(torch.tensor([-1, 999]))
    assert c_skip[0] == 1 and c_out[0] == 0
    assert c_skip[1] < 1e-6 and abs(c_out[1] - 1) < 1e-6


def test_consistency_model_identity_at_data(ac):
    x = torch.randn(4, 2, 3)
    model = ConsistencyModel(RaisingNet(), ac)
    assert torch.equal(model(x, -1), x)
    assert torch.equal(model(x, torch.full((4,), -1)), x)


def test_consistency_model_mixed_batch(ac):
    seen = []
    net = EpsNet(0.3, 0.1, dtype=torch.float32)
    class Rec(nn.Module):
        def forward(self, x, t, **cond):
            seen.append((x.shape[0], t.tolist(), cond["y"].tolist())); return net(x, t)
    model = ConsistencyModel(Rec(), ac)
    x = torch.randn(4, 3)
    t = torch.tensor([-1, 500, -1, 999])
    y = torch.tensor([10, 11, 12, 13])
    out = model(x, t, y=y)
    assert seen == [(2, [500, 999], [11, 13])]
    assert torch.equal(out[[0, 2]], x[[0, 2]])
    ref = consistency_function(net(x[[1, 3]], t[[1, 3]]), x[[1, 3]], t[[1, 3]], ac)
    torch.testing.assert_close(out[[1, 3]], ref)
    # near pure noise, f ~ x0_hat
    a, s = alpha_sigma(t[[3]], ac)
    x0_hat = (x[[3]] - bcast(s, x) * net(x[[3]], t[[3]])) / bcast(a, x)
    torch.testing.assert_close(out[[3]], x0_hat, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# 6. Classifier-free guidance
# ---------------------------------------------------------------------------------------------------------------

def _toy_model(calls):
    def model(x, t, y):
        calls.append((x.shape[0], y.clone()))
        return x * (1 + bcast(y.to(x.dtype), x)) + 0.01 * bcast(t.to(x.dtype), x)
    return model


def test_cfg_scale_one_is_conditional():
    calls = []
    model = _toy_model(calls)
    x, t, y = torch.randn(4, 3), torch.arange(4), torch.tensor([1, 2, 3, 4])
    ref = model(x, t, y=y); calls.clear()
    out = cfg_eps(model, 1.0, null_class(10))(x, t, y=y)
    assert torch.equal(out, ref)
    assert len(calls) == 1 and calls[0][0] == 4


@pytest.mark.parametrize("w", [0.0, 0.5, 3.0, 7.5])
def test_cfg_single_forward_on_concatenated_batch(w):
    calls = []
    model = _toy_model(calls)
    B = 4
    x, t, y = torch.randn(B, 3, dtype=torch.float64), torch.arange(B) * 100, torch.tensor([1, 2, 3, 4])
    eps_c = model(x, t, y=y)
    eps_u = model(x, t, y=torch.full_like(y, 10))
    calls.clear()
    fn = cfg_eps(model, w, null_class(10))
    assert fn.guidance_scale == w
    out = fn(x, t, y=y)
    assert len(calls) == 1 and calls[0][0] == 2 * B
    assert calls[0][1].tolist() == [1, 2, 3, 4, 10, 10, 10, 10]
    torch.testing.assert_close(out, eps_u + w * (eps_c - eps_u))
    if w == 0.0:
        torch.testing.assert_close(out, eps_u)


def test_null_class_and_zero_cond():
    cond = dict(label=torch.tensor([0, 3, 7]), other=torch.randn(3, 2))
    u = null_class(5, key="label")(cond)
    assert u["label"].tolist() == [5, 5, 5] and u["label"].dtype == cond["label"].dtype
    assert u["other"] is cond["other"]
    assert cond["label"].tolist() == [0, 3, 7]  # the input dict is not mutated
    z = zero_cond(cond)
    assert set(z) == {"label", "other"}
    for k in cond:
        assert torch.equal(z[k], torch.zeros_like(cond[k])) and z[k].dtype == cond[k].dtype
    assert cond["other"].abs().sum() > 0


def test_cfg_default_uncond_is_zero_cond():
    seen = []
    def model(x, t, emb):
        seen.append(emb.clone()); return x + emb.sum(1, keepdim=True)
    x, t, emb = torch.randn(2, 3), torch.zeros(2).long(), torch.ones(2, 4)
    out = cfg_eps(model, 2.0)(x, t, emb=emb)
    assert len(seen) == 1 and torch.equal(seen[0][:2], emb) and torch.equal(seen[0][2:], torch.zeros(2, 4))
    torch.testing.assert_close(out, x + 2 * 4.0)  # eps_u + 2 (eps_c - eps_u) = x + 2 * 4


def test_cfg_inside_solve(ac):
    "Guided eps works as the teacher in solve (cond is passed through and per-sample sliced)."
    calls = []
    model = _toy_model(calls)
    grid = timestep_grid(T, 5)
    x, y = torch.randn(3, 2, dtype=torch.float64) * 0.1, torch.tensor([0, 1, 2])
    a = solve(cfg_eps(model, 1.0, null_class(3)), x, grid, ac, cond=dict(y=y))
    b = solve(lambda x, t, y: model(x, t, y=y), x, grid, ac, cond=dict(y=y))
    assert torch.equal(a, b)
    start = torch.tensor([0, 2, 4])
    g = solve_to_data(cfg_eps(model, 2.0, null_class(3)), x, start, grid, ac, cond=dict(y=y))
    for i in range(3):
        ref = solve(cfg_eps(model, 2.0, null_class(3)), x[i:i + 1], grid[int(start[i]):], ac, cond=dict(y=y[i:i + 1]))
        torch.testing.assert_close(g[i:i + 1], ref)


# ---------------------------------------------------------------------------------------------------------------
# 8. Consistency sampling
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("N,k", [(50, 1), (50, 4), (50, 8), (50, 50), (10, 3), (20, 7), (100, 6), (1000, 4),
                                 (8, 3), (25, 25)])
def test_cm_timesteps_match_lcm_scheduler(N, k):
    sched = LCMScheduler(original_inference_steps=N)
    sched.set_timesteps(k)
    ours = cm_timesteps(T, N, k)
    assert ours.tolist() == sched.timesteps.tolist()
    assert len(ours) == k and ours[0] == T - 1


def test_cm_sample_uses_lcm_timesteps(ac):
    N, k = 50, 4
    sched = LCMScheduler(original_inference_steps=N); sched.set_timesteps(k)
    seen = []
    cm = ConsistencyModel(EpsNet(0.3, 0.1, dtype=torch.float32), ac)
    def model(x, t, **cond):
        seen.append(t.tolist()); return cm(x, t, **cond)
    noise = torch.randn(3, 2, 2)
    cm_sample(model, noise, ac, k, N, generator=torch.Generator().manual_seed(0))
    assert seen == [[int(t)] * 3 for t in sched.timesteps]


def test_cm_sample_one_step(ac):
    cm = ConsistencyModel(EpsNet(0.3, 0.1, dtype=torch.float32), ac)
    noise = torch.randn(5, 2, 3)
    for N in (1, 10, 50):
        out = cm_sample(cm, noise, ac, 1, N)
        assert torch.equal(out, cm(noise, torch.full((5,), 999)))
    # with the exact Gaussian consistency function, one step maps noise onto the data distribution
    def exact_f(x, t, **c):
        return exact_flow(x, t, torch.full_like(t, -1), ac)
    out = cm_sample(exact_f, noise.double(), ac, 1, 100)
    torch.testing.assert_close(out, noise.double() * S_DATA / gauss_var(torch.tensor(999), ac).sqrt())


def test_cm_sample_multistep_deterministic_and_alg1(ac):
    N, k = 50, 4
    cm = ConsistencyModel(EpsNet(0.3, 0.1, dtype=torch.float32), ac)
    noise = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(9))
    a = cm_sample(cm, noise, ac, k, N, generator=torch.Generator().manual_seed(0))
    b = cm_sample(cm, noise, ac, k, N, generator=torch.Generator().manual_seed(0))
    c = cm_sample(cm, noise, ac, k, N, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not torch.allclose(a, cm_sample(cm, noise, ac, 1, N))
    # Song et al. 2023, Alg. 1 written out with diffusers' LCM timesteps and the same generator
    sched = LCMScheduler(original_inference_steps=N); sched.set_timesteps(k)
    ts = sched.timesteps
    g = torch.Generator().manual_seed(0)
    x = noise
    for i, t in enumerate(ts):
        x0 = cm(x, torch.full((3,), int(t)))
        if i + 1 == len(ts): break
        al, si = alpha_sigma(ts[i + 1].expand(3), ac)
        z = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = bcast(al, x) * x0 + bcast(si, x) * z
    torch.testing.assert_close(a, x0, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# 7. Argument validation
# ---------------------------------------------------------------------------------------------------------------

def _loss_setup(ac, N=10, B=4):
    grid = timestep_grid(T, N)
    x0 = torch.randn(B, 3, dtype=torch.float64)
    return RaisingNet(), RaisingNet(), make_gauss_eps(ac), x0, grid


def test_unknown_solver(ac):
    grid, x = timestep_grid(T, 10), torch.randn(2, 3)
    eps = make_gauss_eps(ac)
    with pytest.raises(ValueError, match="solver='rk4'"):
        get_solver("rk4")
    with pytest.raises(ValueError, match="solver='rk4'"):
        solve(eps, x, grid, ac, solver="rk4")
    with pytest.raises(ValueError, match="solver='rk4'"):
        solve_to_data(eps, x, torch.tensor([0, 1]), grid, ac, solver="rk4")
    with pytest.raises(ValueError, match="solver='rk4'"):
        solve_between(eps, x, torch.tensor([0, 1]), torch.tensor([2, 3]), grid, ac, solver="rk4")
    with pytest.raises(ValueError, match="solver='rk4'"):
        teacher_sample(eps, x, ac, 10, solver="rk4")
    student, target, teacher, x0, grid = _loss_setup(ac)
    for fn in (cm_loss, direct_cm_loss):  # raised before any network is called
        with pytest.raises(ValueError, match="solver='rk4'"):
            fn(student, target, teacher, x0, grid, ac, solver="rk4")
    with pytest.raises(ValueError, match="solver='rk4'"):
        consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps=2, solver="rk4")
    # a custom step function is accepted
    assert get_solver(euler_step) is euler_step


def test_unknown_metric(ac):
    with pytest.raises(ValueError, match="loss_metric='l1'"):
        distance(torch.zeros(2, 3), torch.ones(2, 3), "l1")
    student, target, teacher, x0, grid = _loss_setup(ac)
    for fn in (cm_loss, direct_cm_loss):
        with pytest.raises(ValueError, match="metric='l1'"):
            fn(student, target, teacher, x0, grid, ac, metric="l1")


@pytest.mark.parametrize("N", [3, 7, 999, 0, 2000])
def test_timestep_grid_bad_divisor(N):
    with pytest.raises(ValueError, match=rf"num_intervals={N}\b.*num_train_timesteps=1000"):
        timestep_grid(1000, N)


@pytest.mark.parametrize("w", [-0.5, -1, float("nan")])
def test_bad_guidance_scale(w):
    with pytest.raises(ValueError, match="guidance_scale"):
        cfg_eps(lambda x, t, **c: x, w)


def test_mismatched_shapes(ac):
    grid, x = timestep_grid(T, 10), torch.randn(3, 2)
    eps = make_gauss_eps(ac)
    with pytest.raises(ValueError, match=r"start has shape \(2,\).*batch size 3"):
        solve_to_data(eps, x, torch.tensor([0, 1]), grid, ac)
    with pytest.raises(ValueError, match=r"start has shape"):
        solve_to_data(eps, x, torch.tensor(0), grid, ac)
    with pytest.raises(ValueError, match=r"stop has shape \(4,\)"):
        solve_between(eps, x, torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3, 3]), grid, ac)
    with pytest.raises(ValueError, match=r"cond\['y'\] has shape \(4,\)"):
        solve(eps, x, grid, ac, cond=dict(y=torch.zeros(4)))
    with pytest.raises(ValueError, match=r"cond\['y'\]"):
        solve_to_data(eps, x, torch.tensor([0, 1, 2]), grid, ac, cond=dict(y=torch.zeros(2)))
    with pytest.raises(ValueError, match=r"start=\[5\], stop=\[2\]"):
        solve_between(eps, x[:1], torch.tensor([5]), torch.tensor([2]), grid, ac)
    with pytest.raises(ValueError, match="stop"):
        solve_between(eps, x[:1], torch.tensor([0]), torch.tensor([11]), grid, ac)
    with pytest.raises(ValueError, match="timesteps"):
        solve(eps, x, torch.tensor([99, 499, -1]), ac)
    with pytest.raises(ValueError, match="timesteps"):
        solve(eps, x, torch.tensor([999]), ac)
    # cond of the wrong batch size in a loss (student ignores cond, so the check in the teacher solve fires)
    student = ConsistencyModel(EpsNet(), ac)
    with pytest.raises(ValueError, match=r"cond\['y'\]"):
        cm_loss(student, copy.deepcopy(student), eps, x.double(), grid, ac, cond=dict(y=torch.zeros(5)))


@pytest.mark.parametrize("bad", [0, -1, "some", True, False, 1.5, None])
def test_bad_target_steps(ac, bad):
    student, target, teacher, x0, grid = _loss_setup(ac)
    with pytest.raises(ValueError, match="target_steps"):
        consistency_distillation_loss(student, target, teacher, x0, grid, ac, target_steps=bad)


@pytest.mark.parametrize("k", [0, 11, 100])
def test_cm_timesteps_bad_num_steps(ac, k):
    with pytest.raises(ValueError, match=rf"num_steps={k}.*num_intervals=10"):
        cm_timesteps(T, 10, k)
    with pytest.raises(ValueError, match="num_steps"):
        cm_sample(RaisingNet(), torch.randn(2, 3), ac, k, 10)
