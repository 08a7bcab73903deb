"The sdxl-paper preset offline: tiny SDXL components from configs, train.ipynb for both losses, stock diffusers loading."
import json, math, os, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    "A tiny SDXL pipeline (UNet with text_time embedding, two CLIP encoders, VAE, tokenizers) and a 4-image caption folder."
    from directcms.presets.sdxl import tiny_sdxl as build
    from directcms.support.image_folder import tiny_caption_folder
    root = tmp_path_factory.mktemp("sdxl")
    build(root / "teacher"); tiny_caption_folder(root / "data")
    return root

def _params(root, loss, out):
    return dict(preset="sdxl-paper", loss=loss, teacher=str(root / "teacher"), data=str(root / "data"), resolution=64,
                batch_size=2, max_steps=2, num_intervals=10, eval_steps=[1, 4], num_eval=2, eval_batch_size=2,
                lora_rank=4, mixed_precision="no", checkpoint_every=1, assets_dir=str(root / "assets"),
                output_dir=str(out), vae="", metrics_weights={"missing": "skip"})   # no metric networks offline

@pytest.mark.parametrize("loss", ["cm", "direct"])
def test_sdxl_train_notebook_and_stock_diffusers(tiny_sdxl, loss, tmp_path):
    import papermill as pm
    from diffusers import LCMScheduler, StableDiffusionXLPipeline
    out = tmp_path / f"sdxl-{loss}"
    pm.execute_notebook(str(ROOT / "nbs" / "train.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False, parameters=_params(tiny_sdxl, loss, out))
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["eval"]) == {"1", "4"} and m["train"]["steps"] == 2
    for blk in m["eval"].values():
        assert math.isfinite(blk["ode_error"])
        assert {"fid", "fd_dinov2", "clip_score", "aesthetic_score"} <= set(blk)   # skipped offline: null
    assert (out / "pytorch_lora_weights.safetensors").exists()
    assert (out / "checkpoints" / "step-0000002" / "pytorch_lora_weights.safetensors").exists()
    # Stock diffusers loads the LoRA and samples 1 and 4 steps with LCMScheduler and no guidance.
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl / "teacher")
    pipe.load_lora_weights(str(out))
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config, original_inference_steps=10)
    saved = torch.load(out / "samples.pt")
    noise = torch.load(tiny_sdxl / "assets" / "init_noise.pt")["noise"][:1]
    for k in (1, 4):
        img = pipe("a picture number a", num_inference_steps=k, guidance_scale=0, height=64, width=64,
                   output_type="pt", generator=torch.Generator().manual_seed(0)).images
        assert img.shape == (1, 3, 64, 64) and torch.isfinite(img).all()
    # ... and its one-step sample from our noise and caption is our student's.
    lat = pipe("a picture number a", num_inference_steps=1, guidance_scale=0, height=64, width=64, latents=noise.clone(),
               output_type="latent").images
    ours = saved["raw"]["samples"][1][0]
    assert torch.allclose(lat[0], ours, atol=1e-3), (lat[0] - ours).abs().max()

def test_missing_teacher_and_data_fail_at_once(tiny_sdxl, tmp_path):
    from directcms.support.config import TrainConfig
    from directcms.run.training import run
    for teacher in ("/nonexistent/sdxl", "stabilityai/stable-diffusion-xl-base-1.0"):
        t0 = time.time()
        with pytest.raises(FileNotFoundError, match="hf download"):
            run(TrainConfig.from_params({**_params(tiny_sdxl, "cm", tmp_path / "x"), "teacher": teacher}), progress=False)
        assert time.time() - t0 < 30
    with pytest.raises(FileNotFoundError, match="metadata"):
        run(TrainConfig.from_params({**_params(tiny_sdxl, "cm", tmp_path / "y"), "data": str(tmp_path)}), progress=False)
    (tmp_path / "empty").mkdir(); (tmp_path / "empty" / "metadata.csv").write_text("file_name,text\n")
    with pytest.raises(ValueError, match="no images"):
        run(TrainConfig.from_params({**_params(tiny_sdxl, "cm", tmp_path / "z"), "data": str(tmp_path / "empty")}), progress=False)

def test_accelerate_launch_two_processes_cpu(tmp_path):
    out = tmp_path / "ddp"
    args = ["loss=direct", "max_steps=3", "batch_size=4", "num_intervals=10", "num_eval=16", "teacher_steps=20",
            "eval_every=0", "checkpoint_every=2", f"assets_dir={tmp_path / 'assets'}", f"output_dir={out}"]
    # torchrun starts two real gloo processes (`accelerate launch --cpu --num_processes 2` would start only one)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "scripts" / "train.py"), *args],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"})
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["steps"] == 3 and m["train"]["processes"] == 2
    assert [json.loads(l)["step"] for l in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_paper_run_stops_before_step_1_when_a_metric_is_missing(tiny_sdxl, tmp_path):
    "Without metric networks (offline) or the paper extra, a paper run stops before any model loads, naming what to install."
    import importlib.util
    from directcms.support.config import TrainConfig
    from directcms.support.image_metrics import MetricsUnavailable, PAPER_EXTRA
    from directcms.run.training import run
    p = {**_params(tiny_sdxl, "cm", tmp_path / "out"), "metrics_weights": {}}
    with pytest.raises(MetricsUnavailable) as e: run(TrainConfig.from_params(p), progress=False)
    msg = str(e.value)
    assert all(f"{m}: " in msg for m in ("fid", "fd_dinov2", "clip_score", "aesthetic_score")), msg
    if importlib.util.find_spec("torch_fidelity") is None: assert PAPER_EXTRA in msg      # the extra is not installed
    assert not (tmp_path / "out" / "log.jsonl").exists() and not (tmp_path / "out" / "checkpoints").exists()
