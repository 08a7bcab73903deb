"The main job: train.ipynb through papermill for both losses, parameter validation, exact resume after a kill."
import json, math, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file

from directcms.support.config import TrainConfig
from directcms.run.training import run

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(max_steps=3, batch_size=8, num_intervals=10, num_eval=32, eval_every=2, checkpoint_every=2)

@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    "A preset folder that the first run fills with what it computes (the fresh-clone path: the teacher ships)."
    return tmp_path_factory.mktemp("assets")

def _papermill(tmp_path, **params):
    import papermill as pm
    return pm.execute_notebook(str(ROOT / "nbs" / "train.ipynb"), str(tmp_path / "out.ipynb"), parameters=params,
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False)

def _finite_numbers(obj):
    if isinstance(obj, dict): return all(_finite_numbers(v) for v in obj.values())
    if isinstance(obj, (int, float)) and not isinstance(obj, bool): return math.isfinite(obj)
    return True

@pytest.mark.parametrize("loss", ["cm", "direct"])
def test_train_notebook(loss, assets, tmp_path):
    out = tmp_path / f"run-{loss}"
    _papermill(tmp_path, loss=loss, assets_dir=str(assets), output_dir=str(out), **TINY)
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"loss", "config", "train", "eval"} and m["loss"] == loss
    assert set(m["train"]) == {"steps", "processes", "optimizer", "seconds", "sec_per_step", "teacher_evals_per_step"} and m["train"]["steps"] == 3 and m["train"]["processes"] == 1 and m["train"]["optimizer"] == "adamw"
    assert set(m["eval"]) == {"1", "2", "4"}
    for k, v in m["eval"].items():
        assert set(v) == {"ode_error", "fd_real", "fd_teacher", "class_accuracy"}, k
    assert _finite_numbers(m), m
    if loss == "cm": assert m["train"]["teacher_evals_per_step"] == 8          # one teacher step per sample
    else: assert 8 < m["train"]["teacher_evals_per_step"] <= 8 * 10            # the rest of the path
    assert json.loads((out / "config.json").read_text())["loss"] == loss
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and "eval" in log[1]
    assert (out / "samples.png").stat().st_size > 1000 and (out / "student" / "config.json").exists()
    assert (out / "checkpoints" / "step-0000003").is_dir()
    assert (assets / "init_noise.pt").exists() and not (assets / "teacher").exists()   # the shipped teacher: nothing trained

def test_bad_parameter_fails_before_any_model(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match="loss='cd'"):
        _papermill(tmp_path, loss="cd", assets_dir=str(tmp_path / "assets"))
    with pytest.raises(pm.PapermillExecutionError, match="unknown parameter"):
        _papermill(tmp_path, lossx="cm", assets_dir=str(tmp_path / "assets"))
    assert not (tmp_path / "assets").exists()

# The validation catalogue (every bad value names its parameter and what is allowed): nbs/11_config.ipynb.

def _cfg(assets, out, **kw):
    return TrainConfig(**{**TINY, "eval_every": 0, "checkpoint_every": 3, "num_eval": 16, "assets_dir": str(assets),
                          "output_dir": str(out), "loss": "direct", **kw})

def _weights(out):
    return load_file(out / "student" / "diffusion_pytorch_model.safetensors")

def _same(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k

def test_resume_after_kill_equals_uninterrupted(assets, tmp_path):
    _papermill_free_assets = run(_cfg(assets, tmp_path / "warm", max_steps=1), progress=False)  # assets exist
    full = tmp_path / "full"
    m_full = run(_cfg(assets, full, max_steps=40), progress=False)
    killed = tmp_path / "killed"
    cfg = _cfg(assets, killed, max_steps=40)
    code = ("import json, sys, torch; from directcms.support.config import TrainConfig; from directcms.run.training import run; "
            f"torch.set_num_threads({torch.get_num_threads()}); "        # same float reductions as this process
            "run(TrainConfig(**json.loads(sys.argv[1])), progress=False)")
    p = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg.to_dict())], env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    log, t0 = killed / "log.jsonl", time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 7: break
        time.sleep(0.01)
    assert p.poll() is None, "the run ended before it could be killed"
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (killed / "metrics.json").exists()
    m_resumed = run(_cfg(assets, killed, max_steps=40), progress=False)
    _same(_weights(full), _weights(killed))
    assert m_resumed["eval"] == m_full["eval"]
    assert [json.loads(l)["step"] for l in log.read_text().splitlines()] == list(range(1, 41))

def test_stop_and_resume_with_lora_and_ema(assets, tmp_path):
    kw = dict(max_steps=5, lora_rank=4, target="ema", loss="cm")
    run(_cfg(assets, tmp_path / "full", **kw), progress=False)
    assert run(_cfg(assets, tmp_path / "part", **kw), progress=False, stop_after=2) == dict(stopped_at=2)
    run(_cfg(assets, tmp_path / "part", **kw), progress=False)
    _same(_weights(tmp_path / "full"), _weights(tmp_path / "part"))

def test_resume_refuses_other_settings(assets, tmp_path):
    run(_cfg(assets, tmp_path / "r", max_steps=1), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        run(_cfg(assets, tmp_path / "r", max_steps=2, lr=1e-3), progress=False)

def test_keyboard_interrupt_saves_a_checkpoint_and_resumes_exactly(assets, tmp_path, monkeypatch):
    import directcms.run.training as training; import directcms.presets.digits as presets
    kw = dict(max_steps=6, checkpoint_every=100)
    run(_cfg(assets, tmp_path / "full", **kw), progress=False)
    calls, batch = [], presets.DigitsPreset.batch
    def interrupting(self, g, n):
        calls.append(1)
        if len(calls) == 4: raise KeyboardInterrupt       # during step 4: steps 1-3 are done
        return batch(self, g, n)
    monkeypatch.setattr(presets.DigitsPreset, "batch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(assets, tmp_path / "part", **kw), progress=False)
    assert sorted(p.name for p in (tmp_path / "part" / "checkpoints").iterdir()) == ["step-0000003"]
    monkeypatch.setattr(presets.DigitsPreset, "batch", batch)
    run(_cfg(assets, tmp_path / "part", **kw), progress=False)
    _same(_weights(tmp_path / "full"), _weights(tmp_path / "part"))


def test_guidance_measures_at_every_evaluation(assets, tmp_path):
    "guidance_grid adds w*, gamma, confidence and precision/recall to every evaluation row and to metrics.json."
    cfg = _cfg(assets, tmp_path / "g", eval_every=2, checkpoint_every=2, max_steps=3, eval_steps=[1], guidance_grid=[2])
    m = run(cfg, progress=False)
    keys = {"w_star", "w_star_refined", "gamma_mean", "gamma_median", "confidence", "precision_teacher", "recall_teacher",
            "precision_real", "recall_real", "fd_w1", "fd_w2", "fd_w3"}
    assert keys <= set(m["eval"]["1"]) and keys <= set(m["teacher"]["10"])
    assert m["teacher"]["10"]["w_star"] == 3.0 and abs(m["teacher"]["10"]["gamma_mean"] - 1) < 1e-6
    log = [json.loads(l) for l in (tmp_path / "g" / "log.jsonl").read_text().splitlines()]
    assert keys <= set(log[1]["eval"]["1"]) and m["eval"]["1"]["w_star"] in (1.0, 2.0, 3.0)


def test_ema_copy_is_evaluated_beside_the_student_and_resumes(assets, tmp_path):
    "eval_ema_decay: an EMA copy of the weights, evaluated at every evaluation and at the end; a resumed run equals an uninterrupted one."
    kw = dict(eval_every=2, checkpoint_every=2, max_steps=4, eval_steps=[1], eval_ema_decay=0.5)
    full = run(_cfg(assets, tmp_path / "full", **kw), progress=False)
    assert set(full["eval_ema"]["1"]) == set(full["eval"]["1"]) and full["eval_ema"]["1"] != full["eval"]["1"]
    assert run(_cfg(assets, tmp_path / "part", **kw), progress=False, stop_after=2) == dict(stopped_at=2)
    part = run(_cfg(assets, tmp_path / "part", **kw), progress=False)
    assert part["eval_ema"] == full["eval_ema"] and part["eval"] == full["eval"]
    log = [json.loads(l) for l in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert "eval_ema" in log[1] and log[1]["eval_ema"]["1"] == [json.loads(l) for l in (tmp_path / "full" / "log.jsonl").read_text().splitlines()][1]["eval_ema"]["1"]
    with pytest.raises(ValueError, match="eval_ema_decay"): TrainConfig(eval_ema_decay=1.0).validate()


def test_guided_start_fits_the_guided_eps_and_resumes(assets, tmp_path):
    "guided_init_steps: the student is regressed on the guided eps before step 1 (guided_init.json); a resumed run equals an uninterrupted one."
    kw = dict(eval_every=0, checkpoint_every=2, max_steps=4, eval_steps=[1], guided_init_steps=3)
    full = run(_cfg(assets, tmp_path / "full", **kw), progress=False)
    fit = json.loads((tmp_path / "full" / "guided_init.json").read_text())
    assert fit["steps"] == 3 and fit["mse_first"] > 0
    plain = run(_cfg(assets, tmp_path / "plain", **{**kw, "guided_init_steps": 0}), progress=False)
    assert plain["eval"] != full["eval"] and not (tmp_path / "plain" / "guided_init.json").exists()
    assert run(_cfg(assets, tmp_path / "part", **kw), progress=False, stop_after=2) == dict(stopped_at=2)
    assert run(_cfg(assets, tmp_path / "part", **kw), progress=False)["eval"] == full["eval"]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="guided_init_steps"): TrainConfig(guided_init_steps=bad).validate()
    with pytest.raises(ValueError, match="guided_init_steps"):
        TrainConfig(preset="sdxl-paper", data="x", mixed_precision="no", guided_init_steps=2).validate()
