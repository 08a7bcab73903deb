"""Two CPU processes under torchrun (gloo), as a user with several GPUs runs scripts/train.py: a run stopped after its
step-2 checkpoint and started again with the same command ends with the weights, log and metrics of an uninterrupted
2-process run (sdxl-paper LoRA checkpoints hold the trainable weights alone; digits checkpoints the whole student)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from safetensors.torch import load_file

from test_sdxl import tiny_sdxl  # noqa: F401  (the module-scoped fixture: tiny SDXL components and a 4-image folder)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

def _launch(params: dict, *extra: str) -> subprocess.CompletedProcess:
    "scripts/train.py over two torchrun processes with name=value arguments."
    args = [f"{k}={v!r}" if isinstance(v, (list, dict)) else f"{k}={v}" for k, v in params.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "scripts" / "train.py"), *args, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def _log(out): return [json.loads(l) for l in (Path(out) / "log.jsonl").read_text().splitlines()]

def _stop_and_resume_equals_uninterrupted(params: dict, tmp_path, steps: int = 4):
    full, part = tmp_path / "full", tmp_path / "part"
    _launch({**params, "output_dir": str(full)})
    _launch({**params, "output_dir": str(part)}, "stop_after=2")
    assert [r["step"] for r in _log(part)] == [1, 2] and not (part / "metrics.json").exists()
    resumed = _launch({**params, "output_dir": str(part)})                       # the same command again
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert [r["step"] for r in _log(part)] == list(range(1, steps + 1))
    assert [r["loss"] for r in _log(part)] == [r["loss"] for r in _log(full)]
    ckpt = f"checkpoints/step-{steps:07d}/model.safetensors"
    a, b = load_file(str(part / ckpt)), load_file(str(full / ckpt))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (part, full))
    assert ma["eval"] == mb["eval"] and ma["train"]["processes"] == 2
    return a

def test_sdxl_two_processes_resume_equals_uninterrupted(tiny_sdxl, tmp_path):
    root = tiny_sdxl
    params = dict(preset="sdxl-paper", loss="cm", teacher=str(root / "teacher"), data=str(root / "data"), vae="",
                  resolution=32, batch_size=4, max_steps=4, num_intervals=10, eval_steps=[1], num_eval=2,
                  eval_batch_size=2, lora_rank=4, mixed_precision="no", checkpoint_every=2, num_workers=0,
                  metrics_weights={"missing": "skip"}, assets_dir=str(tmp_path / "assets"))
    saved = _stop_and_resume_equals_uninterrupted(params, tmp_path)
    assert saved and all("lora_" in k and not k.startswith("module.") for k in saved)   # lean and unwrapped

def test_digits_two_processes_resume_equals_uninterrupted(tmp_path):
    params = dict(preset="digits", loss="direct", batch_size=8, max_steps=4, num_intervals=10, eval_steps=[1],
                  num_eval=16, eval_every=2, checkpoint_every=2, assets_dir=str(tmp_path / "assets"))
    saved = _stop_and_resume_equals_uninterrupted(params, tmp_path)
    assert len(saved) > 10                                                       # the whole student, not adapters

def test_stop_after_must_be_a_step(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "stop_after=0", f"output_dir={tmp_path}"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and "stop_after=0 is invalid" in r.stderr
