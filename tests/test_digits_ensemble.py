"""The seeds of one digits configuration as one batched run (`directcms.run.digits_ensemble`): every member ends with the
weights, log and metrics of its single-seed run (float rounding of the shared teacher solve), a stopped batched run
resumes exactly, a single run resumes a batched run's checkpoint, and bad members fail before any model is built."""
import json, shutil
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file

from directcms.support.config import TrainConfig
from directcms.run.digits_ensemble import run_members
from directcms.run.training import run

TINY = dict(max_steps=3, batch_size=8, num_intervals=10, num_eval=16, eval_every=2, checkpoint_every=2)
WEIGHT_TOL, METRIC_TOL = 1e-5, 1e-4          # absolute on weights, relative on metrics


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return tmp_path_factory.mktemp("assets")


def cfgs(assets, root, seeds=(0, 1, 2), **kw):
    return [TrainConfig(**{**TINY, **kw}, seed=s, assets_dir=str(assets), output_dir=str(root / f"s{s}")) for s in seeds]


def weights(out):
    return load_file(Path(out) / "student" / "diffusion_pytorch_model.safetensors")


def log(out):
    return [json.loads(l) for l in (Path(out) / "log.jsonl").read_text().splitlines()]


def max_weight_diff(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[n] - wb[n]).abs().max().item() for n in wa)


@pytest.mark.parametrize("kw", [dict(loss="direct", eval_ema_decay=0.9), dict(loss="cm", target="ema", max_grad_norm=0.5),
                                dict(loss="direct", guided_init_steps=2)],
                         ids=["direct-eval-ema", "cm-ema-clip", "direct-guided-start"])
def test_batched_members_equal_single_runs(assets, tmp_path, kw):
    batched = run_members(cfgs(assets, tmp_path / "b", **kw), progress=False)
    single = [run(c, progress=False) for c in cfgs(assets, tmp_path / "o", **kw)]
    for b, s in zip(batched, single):
        ob, os_ = b["config"]["output_dir"], s["config"]["output_dir"]
        assert max_weight_diff(ob, os_) < WEIGHT_TOL
        assert b["train"]["members"] == 3 and set(b["train"]) - {"members"} == set(s["train"])
        assert b["teacher"] == s["teacher"]
        assert b.keys() == s.keys()
        for part in ("eval", "eval_ema"):
            for k, row in s.get(part, {}).items():
                for m, v in row.items(): assert b[part][k][m] == pytest.approx(v, rel=METRIC_TOL, abs=1e-6), (part, k, m)
        lb, ls = log(ob), log(os_)
        assert [r.keys() for r in lb] == [r.keys() for r in ls]
        assert ("eval_ema" in lb[1]) == ("eval_ema_decay" in kw)
        for rb, rs in zip(lb, ls):
            assert (rb["step"], rb["teacher_evals"], rb["mean_start_index"]) == (rs["step"], rs["teacher_evals"], rs["mean_start_index"])
            assert rb["loss"] == pytest.approx(rs["loss"], rel=METRIC_TOL)
        assert sorted(p.name for p in (Path(ob) / "checkpoints").iterdir()) == ["step-0000002", "step-0000003"]
        assert (Path(ob) / "samples.png").exists() and (Path(ob) / "samples.pt").exists()


def test_stopped_batched_run_resumes_exactly(assets, tmp_path):
    full = run_members(cfgs(assets, tmp_path / "full", max_steps=4, eval_every=0), progress=False)
    assert run_members(cfgs(assets, tmp_path / "part", max_steps=4, eval_every=0), progress=False, stop_after=3) == [dict(stopped_at=3)] * 3
    assert [r["step"] for r in log(tmp_path / "part" / "s1")] == [1, 2, 3]
    resumed = run_members(cfgs(assets, tmp_path / "part", max_steps=4, eval_every=0), progress=False)
    for f, r in zip(full, resumed):
        assert max_weight_diff(f["config"]["output_dir"], r["config"]["output_dir"]) == 0.0
        assert f["eval"] == r["eval"]
    assert [r["step"] for r in log(tmp_path / "part" / "s1")] == [1, 2, 3, 4]


def test_single_run_resumes_a_batched_checkpoint(assets, tmp_path):
    kw = dict(max_steps=4, eval_every=0, seeds=(3, 4))
    full = run_members(cfgs(assets, tmp_path / "full", **kw), progress=False)
    run_members(cfgs(assets, tmp_path / "part", **kw), progress=False, stop_after=2)
    one = run(cfgs(assets, tmp_path / "part", **kw)[1], progress=False)         # training.run takes over member 1
    assert max_weight_diff(full[1]["config"]["output_dir"], one["config"]["output_dir"]) < WEIGHT_TOL
    assert [r["step"] for r in log(tmp_path / "part" / "s4")] == [1, 2, 3, 4]


def test_bad_members_fail_before_any_model(tmp_path):
    a = cfgs(tmp_path / "assets", tmp_path / "a", seeds=(0,))
    b = cfgs(tmp_path / "assets", tmp_path / "b", seeds=(1,), lr=1e-3)
    with pytest.raises(ValueError, match="may differ in"): run_members(a + b, progress=False)
    with pytest.raises(ValueError, match="lora_rank=4"): run_members(cfgs(tmp_path / "assets", tmp_path / "c", lora_rank=4), progress=False)
    assert not (tmp_path / "assets").exists() and not (tmp_path / "a").exists()


def test_resume_at_the_newest_step_every_member_has(assets, tmp_path):
    "Killed between two members' saves of step 3: the run resumes from step 2 for both and ends exactly as uninterrupted."
    kw = dict(max_steps=4, eval_every=0, checkpoint_every=1, seeds=(0, 1))
    full = run_members(cfgs(assets, tmp_path / "full", **kw), progress=False)
    run_members(cfgs(assets, tmp_path / "part", **kw), progress=False, stop_after=3)
    shutil.rmtree(tmp_path / "part" / "s1" / "checkpoints" / "step-0000003")     # member 1's step 3 never written
    resumed = run_members(cfgs(assets, tmp_path / "part", **kw), progress=False)
    for f, r in zip(full, resumed):
        assert max_weight_diff(f["config"]["output_dir"], r["config"]["output_dir"]) == 0.0 and f["eval"] == r["eval"]
        assert [row["step"] for row in log(r["config"]["output_dir"])] == [1, 2, 3, 4]


def test_keyboard_interrupt_saves_every_member_and_resumes_exactly(assets, tmp_path, monkeypatch):
    import directcms.presets.digits as presets
    kw = dict(max_steps=4, eval_every=0, checkpoint_every=100, seeds=(0, 1))
    full = run_members(cfgs(assets, tmp_path / "full", **kw), progress=False)
    calls, batch = [], presets.DigitsPreset.batch
    def interrupting(self, g, n, loaded=None):
        calls.append(1)
        if len(calls) == 2 * 2 + 2: raise KeyboardInterrupt      # in step 3, after member 0's draw: steps 1-2 are done
        return batch(self, g, n)
    monkeypatch.setattr(presets.DigitsPreset, "batch", interrupting)
    with pytest.raises(KeyboardInterrupt): run_members(cfgs(assets, tmp_path / "part", **kw), progress=False)
    for s in ("s0", "s1"): assert [p.name for p in (tmp_path / "part" / s / "checkpoints").iterdir()] == ["step-0000002"]
    monkeypatch.setattr(presets.DigitsPreset, "batch", batch)
    resumed = run_members(cfgs(assets, tmp_path / "part", **kw), progress=False)
    for f, r in zip(full, resumed):
        assert max_weight_diff(f["config"]["output_dir"], r["config"]["output_dir"]) == 0.0 and f["eval"] == r["eval"]
