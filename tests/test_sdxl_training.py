"Issue 10, training side, on a tiny SDXL: fp32 trainable weights under bf16, gradient clipping, the global batch, DataLoader workers that resume exactly."
import json, math
from pathlib import Path
import pytest
import torch

from test_sdxl import tiny_sdxl  # noqa: F401  (the module-scoped fixture: tiny SDXL components and a 4-image folder)
from directcms.support.config import TrainConfig
from directcms.run.training import build_student, split_batch, train

@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    "accelerate keeps one mixed-precision setting per process: forget it around each test (bf16 here, 'no' elsewhere)."
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)

def _cfg(root, out, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(preset="sdxl-paper", loss="cm", teacher=str(root / "teacher"), data=str(root / "data"),
                                 vae="", resolution=32, batch_size=2, max_steps=2, num_intervals=10, eval_steps=[1],
                                 num_eval=2, eval_batch_size=2, lora_rank=4, mixed_precision="no", checkpoint_every=100,
                                 num_workers=0, assets_dir=str(root / "assets32"), output_dir=str(out),
                                 metrics_weights={"missing": "skip"}), **kw}).validate()

def _log(out): return [json.loads(l) for l in (Path(out) / "log.jsonl").read_text().splitlines()]

def _trainable(student): return {n: p.detach().clone() for n, p in student.named_parameters() if p.requires_grad}

def _initial(cfg):
    "The student's trainable weights before training (train seeds the same way before build_student)."
    from directcms.presets.sdxl import SDXLPreset
    torch.manual_seed(cfg.seed)
    return _trainable(build_student(SDXLPreset(cfg, progress=False), cfg)[0])

def test_bf16_lora_keeps_fp32_adapters_and_both_factors_learn(tiny_sdxl, tmp_path):
    cfg = _cfg(tiny_sdxl, tmp_path / "r", mixed_precision="bf16", max_steps=3, lr=1e-4)
    before = _initial(cfg)
    r = train(cfg, progress=False)
    params = dict(r["student"].named_parameters())
    assert {p.dtype for p in params.values() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in params.values() if not p.requires_grad} == {torch.bfloat16}   # the frozen teacher
    assert {n for n, p in params.items() if p.requires_grad} == set(before) and all("lora_" in n for n in before)
    rows = _log(cfg.output_dir)
    assert [row["step"] for row in rows] == [1, 2, 3] and all(math.isfinite(row["loss"]) for row in rows)
    assert all(math.isfinite(row["grad_norm"]) for row in rows)              # sdxl-paper clips at 1.0 by default
    # A learns from step 2 (B = 0 before). Its large entries (>= 1/8) are where bf16 weights lose 1e-4 steps: their
    # spacing there is 2^-10, so a step below 4.9e-4 rounds back; fp32 adapters keep them.
    a0 = torch.cat([before[n].flatten() for n in before if "lora_A" in n])
    a3 = torch.cat([params[n].detach().flatten() for n in before if "lora_A" in n])
    large = a0.abs() >= 0.125
    assert large.sum() >= 20 and (a3 != a0)[large].float().mean() > 0.9
    assert (a3 - a0).abs().max() < 1e-3                                    # steps of about lr
    b = torch.cat([(params[n].detach() - before[n]).flatten() for n in before if "lora_B" in n])
    assert (b != 0).float().mean() > 0.9

def test_bf16_full_fine_tune_has_fp32_master_weights(tiny_sdxl, tmp_path):
    cfg = _cfg(tiny_sdxl, tmp_path / "r", mixed_precision="bf16", lora_rank=0, max_steps=1)
    r = train(cfg, progress=False)
    student = dict(r["student"].named_parameters())
    assert student and all(p.requires_grad and p.dtype == torch.float32 for p in student.values())
    assert {p.dtype for p in r["preset"].teacher_net.parameters()} == {torch.bfloat16}
    assert math.isfinite(_log(cfg.output_dir)[0]["loss"])

def test_gradient_clipping_bounds_the_step_and_logs_the_norm_before_clipping(tiny_sdxl, tmp_path):
    with pytest.raises(ValueError, match="max_grad_norm"): _cfg(tiny_sdxl, tmp_path, max_grad_norm=-1.0)
    assert TrainConfig(preset="sdxl-paper", data="x", mixed_precision="no").validate().max_grad_norm == 1.0
    loose, tight = (_cfg(tiny_sdxl, tmp_path / name, max_steps=1, max_grad_norm=c)
                    for name, c in (("loose", 1e6), ("tight", 1e-12)))
    before = _initial(loose)
    runs = {c.output_dir: _trainable(train(c, progress=False)["student"]) for c in (loose, tight)}
    norms = [_log(c.output_dir)[0]["grad_norm"] for c in (loose, tight)]
    assert norms[0] > 1e-6 and norms[0] == pytest.approx(norms[1], rel=1e-5)   # the same gradient, before clipping
    step = {d: max((w[n] - before[n]).abs().max().item() for n in w if "lora_B" in n) for d, w in runs.items()}
    # AdamW's first step is about lr per weight; a gradient clipped far below its eps moves B by ~lr * 1e-4 at most
    assert step[loose.output_dir] > 5e-5 and step[tight.output_dir] < 1e-8, step
    off = _cfg(tiny_sdxl, tmp_path / "off", max_steps=1, max_grad_norm=0)
    train(off, progress=False)
    assert "grad_norm" not in _log(off.output_dir)[0]

def test_batch_size_is_global_and_must_split_across_processes(tiny_sdxl, tmp_path, monkeypatch):
    assert split_batch(16, 8) == 2 and split_batch(16, 1) == 16
    import accelerate
    monkeypatch.setattr(accelerate.Accelerator, "num_processes", property(lambda self: 3))
    cfg = _cfg(tiny_sdxl, tmp_path / "r", batch_size=4, teacher=str(tmp_path / "no-teacher"))
    with pytest.raises(ValueError, match=r"batch_size=4 is invalid: allowed a multiple of the 3 processes"):
        train(cfg, progress=False)
    assert not (tmp_path / "r" / "config.json").exists()          # failed before anything was loaded or written

def test_loader_reads_epochs_with_random_crops_in_workers(tiny_sdxl, tmp_path):
    "The training images: epochs without replacement and random crops (the official loader), the same in workers and in process."
    from directcms.presets.sdxl import SDXLPreset
    cfg = _cfg(tiny_sdxl, tmp_path / "r", num_workers=2, batch_size=3)
    preset = SDXLPreset(cfg, progress=False)
    workers = list(preset.train_loader(0, 4, 0, 3))
    preset.cfg.num_workers = 0
    inproc = list(preset.train_loader(0, 4, 0, 3))
    assert len(workers) == 4 and all(torch.equal(a["pixels"], b["pixels"]) for a, b in zip(workers, inproc))
    seen = [int(i) for b in workers for i in b["indices"]]
    assert sorted(seen[:4]) == [0, 1, 2, 3] and sorted(seen[4:8]) == [0, 1, 2, 3]      # 4 images: each once per epoch
    crops = {(int(b["indices"][j]), b["crop_top_left"][j]) for b in workers for j in range(3)}
    assert len({c for i, c in crops if i == 2}) > 1                                     # image 2 (64x96) cropped anew
    x0, cond = preset.batch(torch.Generator().manual_seed(0), 3, workers[1])
    assert x0.shape == (3, 4, 16, 16) and cond["time_ids"][:, 2:4].tolist() == [list(c) for c in workers[1]["crop_top_left"]]
    with pytest.raises(RuntimeError, match="train_loader gave 3 images for a step of 2"):
        preset.batch(torch.Generator(), 2, workers[0])

def test_resume_with_workers_equals_uninterrupted(tiny_sdxl, tmp_path):
    kw = dict(max_steps=4, checkpoint_every=2, num_workers=2)
    full = _trainable(train(_cfg(tiny_sdxl, tmp_path / "full", **kw), progress=False)["student"])
    part = _cfg(tiny_sdxl, tmp_path / "part", **kw)
    assert train(part, progress=False, stop_after=2)["steps"] == 2
    resumed = _cfg(tiny_sdxl, tmp_path / "part", **{**kw, "num_workers": 0})   # in-process decoding: the same batches
    r = train(resumed, progress=False)
    assert r["steps"] == 4 and [row["step"] for row in _log(part.output_dir)] == [1, 2, 3, 4]
    w = _trainable(r["student"])
    assert w.keys() == full.keys() and all(torch.equal(w[k], full[k]) for k in w)
    assert [row["loss"] for row in _log(part.output_dir)] == [row["loss"] for row in _log(tmp_path / "full")]
    # the checkpoint holds the trainable LoRA weights alone, not the frozen UNet (5 GB at SDXL size)
    from safetensors.torch import load_file
    ckpt = sorted((Path(part.output_dir) / "checkpoints").glob("step-*"))[-1]
    saved = load_file(str(ckpt / "model.safetensors"))
    assert saved and all("lora_" in k for k in saved) and len(saved) == len(full)

def test_two_processes_split_the_global_batch(tiny_sdxl, tmp_path):
    "Two processes: batch_size 4 is 2 images per process, clipped, decoded by a worker each; 3 fails before loading."
    import os, subprocess, sys
    root = Path(__file__).resolve().parents[1]
    cfg = _cfg(tiny_sdxl, tmp_path / "ddp", batch_size=4, num_workers=1, checkpoint_every=1)
    args = [f"{k}={v!r}" if isinstance(v, (list, dict)) else f"{k}={v}" for k, v in cfg.to_dict().items()
            if k in ("preset", "loss", "teacher", "data", "resolution", "batch_size", "max_steps", "num_intervals", "num_eval",
                     "eval_batch_size", "lora_rank", "mixed_precision", "checkpoint_every", "num_workers", "assets_dir",
                     "output_dir", "metrics_weights")]
    # torchrun, not `accelerate launch --cpu` (which starts a single process): two gloo processes
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              str(root / "scripts" / "train.py"), "eval_steps=[1]", "vae="]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*launch, *args], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _log(cfg.output_dir)
    assert [row["step"] for row in rows] == [1, 2]
    assert all(row["teacher_evals"] == 4 and math.isfinite(row["grad_norm"]) for row in rows)   # cm: one per image, both processes
    bad = subprocess.run([*launch, *[a.replace("batch_size=4", "batch_size=3").replace("/ddp", "/odd") for a in args]], capture_output=True,
                         text=True, timeout=900, env=env)
    assert bad.returncode != 0 and "batch_size=3 is invalid: allowed a multiple of the 2 processes" in bad.stderr, bad.stderr[-3000:]
    assert not (tmp_path / "odd" / "config.json").exists()


def test_lean_checkpoint_of_other_adapters_is_refused(tmp_path):
    "A LoRA checkpoint of other trainable tensors (other adapted layers) must not load silently (strict=False would skip it)."
    from safetensors.torch import save_file
    from directcms.run.training import _check_lean_checkpoint
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    net[0].requires_grad_(False)
    save_file({"1.weight": torch.zeros(2, 2), "1.bias": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    _check_lean_checkpoint(tmp_path, net)                                  # the same trainable tensors: fine
    save_file({"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="settings it was saved with"):
        _check_lean_checkpoint(tmp_path, net)


def test_weights_are_fetched_before_the_process_group(tiny_sdxl, tmp_path, monkeypatch):
    "train calls the preset's prefetch before accelerate sets up its state (no rank waits on a barrier for a download)."
    from accelerate.state import PartialState
    from directcms.presets.sdxl import SDXLPreset
    seen = []
    monkeypatch.setattr(SDXLPreset, "prefetch", classmethod(lambda cls, cfg: seen.append(dict(PartialState._shared_state))))
    train(_cfg(tiny_sdxl, tmp_path / "r", max_steps=1), progress=False)
    assert seen == [{}]                                                    # called once, with no accelerate state yet
