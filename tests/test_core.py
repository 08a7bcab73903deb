"""What the core notebooks (nbs/00-05) cannot show as an example: the loss with its random grid index forced to the
last noisy index (a monkeypatch of torch.randint). Every other check of the core lives in those notebooks, which
tests/test_notebooks.py runs."""

import torch

from directcms.core.schedules import alphas_cumprod_from_config, timestep_grid
from directcms.core.parameterization import ConsistencyModel
from directcms.core.losses import consistency_distillation_loss
from directcms.science.analytic import ring_mixture, MLPEps


def test_cm_equals_direct_cm_when_start_is_last_noisy_index(monkeypatch):
    "With every sample one step from data, CM (target_steps=1) and Direct CM ('all') are the same loss."
    N, B = 10, 5
    ac, ring = alphas_cumprod_from_config(), ring_mixture()
    grid = timestep_grid(1000, N)
    x0, y = ring.sample(B, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    student, target = [ConsistencyModel(MLPEps(2, 4, width=16, depth=2).double(), ac) for _ in range(2)]
    loss = lambda k: consistency_distillation_loss(student, target, ring.eps_model, x0, grid, ac, dict(y=y),
                                                   target_steps=k, generator=torch.Generator().manual_seed(2))

    # control: with a real random grid index most samples start far from data, and CM != Direct CM
    assert not torch.allclose(loss(1)[0], loss("all")[0])

    def last_index(low, high, size, **kw):
        kw.pop("generator", None)
        return torch.full(size, high - 1, dtype=torch.long, device=kw.get("device", "cpu"))
    monkeypatch.setattr(torch, "randint", last_index)
    (l1, d1), (la, da) = loss(1), loss("all")
    assert torch.equal(l1, la) and l1 > 0
    assert d1 == da == dict(mean_start_index=float(N - 1), teacher_evals=B)
