"""Numbers pinned before the solver-hooks / science split refactor (issue 21, parts 1 and 4): the analytic trainer
(`distill`, `analytic_group` one by one and as an ensemble, with the d = 2 trajectory side file), `EnsembleDistiller`
(two grids, online and EMA targets) and `convergence_setting`, each at a tiny size in float64. EXPECTED was computed
from the code before the change; every value must agree to 1e-6 relative (1e-12 absolute)."""
import copy
import json

import pytest
import torch

from directcms.science.analytic import MLPEps
from directcms.core.parameterization import ConsistencyModel

from directcms.science.testbed import analytic_teacher
from directcms.science.ensemble import distill, EnsembleDistiller, distill_ensemble
from directcms.science.sweeps import analytic_group
from directcms.science.convergence import convergence_setting, convergence_members


def _wsum(mlp): return sum(float(p.detach().double().sum()) for p in mlp.parameters())


def _mlps(n, d=2, seed=0):
    torch.manual_seed(seed)
    return [MLPEps(d, 4, width=16, depth=2).double() for _ in range(n)]


def pinned_numbers(tmp) -> dict:
    out = {}
    gmm = analytic_teacher(2)
    teacher = gmm.guided_eps_model(3.0)
    for k in (1, 3, "all"):                                                   # the analytic trainer alone
        mlp = _mlps(1)[0]
        losses = distill(ConsistencyModel(mlp, gmm.alphas_cumprod).train(), teacher, gmm, 10, k, 4, 32, 3e-3, 1)
        out[f"distill_k{k}_loss_sum"], out[f"distill_k{k}_wsum"] = sum(losses), _wsum(mlp)
    members = [dict(N=10, k=1, seed=0), dict(N=10, k="all", seed=0), dict(N=20, k=2, seed=1),
               dict(N=20, k=1, seed=1, target="ema"), dict(N=20, k="all", seed=1, target="ema")]
    mlps = _mlps(len(members))                                                # the ensemble, two grids, EMA targets
    dist = EnsembleDistiller(mlps, teacher, gmm, members, 24, 3e-3, None, 0.9)
    loss = dist.train(5)
    dist.write_to(mlps)
    for i, (l, m) in enumerate(zip(loss.sum(1).tolist(), mlps)): out[f"ens_{i}_loss_sum"], out[f"ens_{i}_wsum"] = l, _wsum(m)
    mlps = _mlps(3)
    ls = distill_ensemble(mlps, teacher, gmm, members[:3], 4, 16, 3e-3)
    out["distill_ensemble_loss_sum"], out["distill_ensemble_wsum"] = sum(map(sum, ls)), sum(map(_wsum, mlps))
    tiny = dict(fit_steps=5, train_steps=4, batch_size=16, num_eval=32)       # analytic_group, d = 2 with trajectories
    group = [dict(d=2, w=3.0, N=10, k=k, width="small", seed=1, **tiny) for k in (1, "all")]
    for ens in (False, True):
        res = analytic_group(group, tmp / f"g{ens}", tmp / "cache", ensemble=ens)
        for r in res:
            key = f"group{int(ens)}_k{r['settings']['k']}"
            out[f"{key}_loss_last"], out[f"{key}_sw1"] = r["train"]["loss_last"], r["metrics"]["1"]["sw"]
            out[f"{key}_ode1"] = r["metrics"]["1"]["ode_error_teacher"]
        for p in sorted((tmp / f"g{ens}").glob("*.pt")):
            side = torch.load(p)
            k = "1" if "_k1_" in p.name else "all"
            out[f"group{int(ens)}_k{k}_path_sum"] = float(side["path"].sum())
            out[f"group{int(ens)}_k{k}_pred_sum"] = float(side["pred"].sum())
            out[f"group{int(ens)}_k{k}_path_shape"] = float(side["path"].numel() * 1000 + side["pred"].numel())
    res = convergence_setting(2, 10, 3.0, convergence_members([1, "all"], 1), tmp / "conv", tmp / "cache",
                              progress=False, fit_steps=5, batch_size=16, num_eval=32, first_eval=2, max_steps=4,
                              save_every=2)
    for c in res["curves"]:
        for i, q in enumerate(c["members"]):
            for m in ("sw", "ode_error_teacher", "feature_fd", "loss"):
                if q.get(m) is not None: out[f"conv_s{c['step']}_m{i}_{m}"] = q[m]
    return out


EXPECTED = {
    'distill_k1_loss_sum': 18.803472757339478,
    'distill_k1_wsum': 4.6488552978840465,
    'distill_k3_loss_sum': 58.38839530944824,
    'distill_k3_wsum': 4.5235479130100344,
    'distill_kall_loss_sum': 96.24958515167236,
    'distill_kall_wsum': 4.518048504875222,
    'ens_0_loss_sum': 58.052066802978516,
    'ens_0_wsum': 4.031544588713361,
    'ens_1_loss_sum': 145.07876586914062,
    'ens_1_wsum': -7.340466932685122,
    'ens_2_loss_sum': 24.048810958862305,
    'ens_2_wsum': -10.85601480530978,
    'ens_3_loss_sum': 10.535236358642578,
    'ens_3_wsum': 2.9154366018895628,
    'ens_4_loss_sum': 167.12356567382812,
    'ens_4_wsum': 18.598507871969712,
    'distill_ensemble_loss_sum': 94.99516010284424,
    'distill_ensemble_wsum': -14.46028236697479,
    'group0_k1_loss_last': 15.302652359008789,
    'group0_k1_sw1': 13.77316391402875,
    'group0_k1_ode1': 203.79037808204566,
    'group0_kall_loss_last': 75.6036148071289,
    'group0_kall_sw1': 13.731429775368223,
    'group0_kall_ode1': 202.35950609542033,
    'group0_k1_path_sum': 206.37336746111544,
    'group0_k1_pred_sum': 685.5962460841567,
    'group0_k1_path_shape': 352320.0,
    'group0_kall_path_sum': 206.37336746111544,
    'group0_kall_pred_sum': 683.2062241981725,
    'group0_kall_path_shape': 352320.0,
    'group1_k1_loss_last': 15.302652359008789,
    'group1_k1_sw1': 13.77316391402875,
    'group1_k1_ode1': 203.79037808204566,
    'group1_kall_loss_last': 75.6036148071289,
    'group1_kall_sw1': 13.731429775368223,
    'group1_kall_ode1': 202.35950609542033,
    'group1_k1_path_sum': 206.37336746111544,
    'group1_k1_pred_sum': 685.5962460841567,
    'group1_k1_path_shape': 352320.0,
    'group1_kall_path_sum': 206.37336746111544,
    'group1_kall_pred_sum': 683.2062241981725,
    'group1_kall_path_shape': 352320.0,
    'conv_s0_m0_sw': 11.072132025838679,
    'conv_s0_m0_ode_error_teacher': 137.52996121623178,
    'conv_s0_m0_feature_fd': 5656.4072265625,
    'conv_s0_m1_sw': 11.072132025838679,
    'conv_s0_m1_ode_error_teacher': 137.52996121623178,
    'conv_s0_m1_feature_fd': 5656.4072265625,
    'conv_s0_m2_sw': 11.072132025838679,
    'conv_s0_m2_ode_error_teacher': 137.52996121623178,
    'conv_s0_m2_feature_fd': 5656.4072265625,
    'conv_s2_m0_sw': 10.71014829994286,
    'conv_s2_m0_ode_error_teacher': 129.1582294710359,
    'conv_s2_m0_feature_fd': 5171.02783203125,
    'conv_s2_m0_loss': 5.816083908081055,
    'conv_s2_m1_sw': 10.659911848798012,
    'conv_s2_m1_ode_error_teacher': 127.86120421272325,
    'conv_s2_m1_feature_fd': 5252.01611328125,
    'conv_s2_m1_loss': 24.36940574645996,
    'conv_s2_m2_sw': 10.69573737499356,
    'conv_s2_m2_ode_error_teacher': 128.78144161623737,
    'conv_s2_m2_feature_fd': 5268.81494140625,
    'conv_s2_m2_loss': 5.22691535949707,
    'conv_s4_m0_sw': 10.498392586002044,
    'conv_s4_m0_ode_error_teacher': 124.19395643480598,
    'conv_s4_m0_feature_fd': 5100.4208984375,
    'conv_s4_m0_loss': 1.8165473937988281,
    'conv_s4_m1_sw': 10.452925524658408,
    'conv_s4_m1_ode_error_teacher': 123.03629881205477,
    'conv_s4_m1_feature_fd': 5049.8349609375,
    'conv_s4_m1_loss': 6.4881911277771,
    'conv_s4_m2_sw': 10.438847207660771,
    'conv_s4_m2_ode_error_teacher': 122.65639351520909,
    'conv_s4_m2_feature_fd': 5012.91259765625,
    'conv_s4_m2_loss': 1.7619471549987793,
}


def test_pinned_numbers(tmp_path):
    got = pinned_numbers(tmp_path)
    assert got.keys() == EXPECTED.keys()
    for k, v in EXPECTED.items(): assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-12), k


if __name__ == "__main__":
    import sys, tempfile, pathlib
    with tempfile.TemporaryDirectory() as d: print(repr(pinned_numbers(pathlib.Path(d))))
