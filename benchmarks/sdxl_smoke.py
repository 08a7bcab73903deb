"""A full-size smoke run of the paper's configuration: the real main job with sdxl-paper at 1024 px, both losses.

    python benchmarks/sdxl_smoke.py --out benchmarks/results        # GPU (H100/H200): full-size SDXL, fp16; meant to take < 8 min (not yet timed on a GPU)
    python benchmarks/sdxl_smoke.py --tiny                           # CPU: the same path on tiny components, ~1 min

Offline and without weights: the SDXL architecture is built from its public configs (UNet 2.6B as in SDXL base 1.0's
unet/config.json, CLIP ViT-L and OpenCLIP bigG text encoders at full size, SDXL's VAE) with random weights, and saved
as a diffusers pipeline folder (fp16). Tokenizers are written locally (a letters-only vocabulary, as in the tests).
A synthetic caption folder of 64 images is the data. Then `directcms.run.training.run` (the main job behind train.ipynb)
trains CM and Direct CM for 3 steps each (batch 16, N = 100, w = 9, LoRA 64, fp16, gradient checkpointing) and
evaluates 32 captions with 1, 2 and 4 steps (image metrics are skipped offline). The VAE is a separate folder with the
fp16-fix VAE's layout and settings (fp16, no upcast), passed as `vae=` as the preset does, decoded one image at a time
(`decode_batch_size=1`, the preset's default). Printed per loss: s/step, teacher
image-evaluations/step (log.jsonl's teacher_evals: images through the guided teacher, each one UNet pass on the
conditional and unconditional pair), peak GPU memory (training, and the whole job), evaluation images/s, checkpoint size,
and whether a stock StableDiffusionXLPipeline loads the LoRA (`load_lora_weights(output_dir)`) and samples one
LCMScheduler step from it. Random weights make the numbers of speed and memory real and the images noise.
The JSON is rewritten after each loss, so a run cut short still brings back what it measured.

On a device machine that has torch, accelerate, peft and torchmetrics but not diffusers or transformers, bring
wheels (with their dependencies, for the device's Python) into an ignored folder here, carry it, install from it there:

    echo /.wheels/ >> .git/info/exclude
    pip download -d .wheels diffusers==0.42.1 transformers==5.24.0 huggingface_hub==2.4.0 tokenizers==0.23.3 \
        safetensors==0.8.0 --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11
    rm .wheels/numpy-*  # torchmetrics brings numpy; the rest is ~43 MB (checked), within the 64 MiB that travels
    # device (carry [".wheels"]): pip install -q --no-index --find-links .wheels diffusers==0.42.1 transformers==5.24.0 \
    #   && PYTHONPATH=. python benchmarks/sdxl_smoke.py --out $OUT --work /tmp/smoke
"""
import argparse, contextlib, gc, json, math, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch

# SDXL base 1.0's unet/config.json (stabilityai/stable-diffusion-xl-base-1.0), the keys that differ from diffusers' defaults.
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280), layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 mid_block_type="UNetMidBlock2DCrossAttn", transformer_layers_per_block=(1, 2, 10),
                 attention_head_dim=(5, 10, 20), cross_attention_dim=2048, addition_embed_type="text_time",
                 addition_embed_type_num_heads=64, addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                 use_linear_projection=True, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
                 act_fn="silu")
# vae/config.json of SDXL base 1.0.
SDXL_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, act_fn="silu",
                norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
# text_encoder (CLIP ViT-L/14) and text_encoder_2 (OpenCLIP ViT-bigG/14) configs; token ids match the local tokenizer.
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, projection_dim=768,
              hidden_act="quick_gelu", vocab_size=49408, max_position_embeddings=77)
CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32, projection_dim=1280,
              hidden_act="gelu", vocab_size=49408, max_position_embeddings=77)
# scheduler/scheduler_config.json of SDXL base 1.0 (the library reads its betas).
SDXL_SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
                      steps_offset=1, timestep_spacing="leading", prediction_type="epsilon")
# tests/test_sdxl.py's tiny components.
TINY_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                 attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
                 cross_attention_dim=64, norm_num_groups=8)
TINY_VAE = dict(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
TINY_CLIP = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32,
                 hidden_act="gelu", vocab_size=60, max_position_embeddings=16)
LETTERS = "abcdefghijklmnopqrstuvwxyz"

def _tokenizer(d, max_length):
    "A letters-only CLIP tokenizer written locally (no download): what tests/test_sdxl.py uses."
    from transformers import CLIPTokenizer
    toks = ["<|startoftext|>", "<|endoftext|>", *LETTERS, *(c + "</w>" for c in LETTERS)]
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(toks)}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=max_length)

def build_pipeline(folder, tiny, device):
    "An SDXL pipeline folder with random weights: full size (fp16 on disk) or tiny (fp32)."
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    ids = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1)
    l, g = (TINY_CLIP, TINY_CLIP) if tiny else (CLIP_L, CLIP_G)
    torch.manual_seed(0)
    with torch.device(device):            # random init where it is fast (the GPU), then fp16 for the disk
        unet = UNet2DConditionModel(**(TINY_UNET if tiny else SDXL_UNET))
        vae = AutoencoderKL(**(TINY_VAE if tiny else SDXL_VAE))
        te, te2 = CLIPTextModel(CLIPTextConfig(**l, **ids)), CLIPTextModelWithProjection(CLIPTextConfig(**g, **ids))
    tok = _tokenizer(Path(folder) / "_tok", l["max_position_embeddings"])
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
                                     unet=unet, scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER))
    if not tiny: pipe.to(torch.float16)
    pipe.save_pretrained(folder)
    shutil.rmtree(Path(folder) / "_tok")
    # the preset's own VAE, as a separate folder in madebyollin/sdxl-vae-fp16-fix's layout (config.json at its root,
    # force_upcast off, so it decodes in fp16 as a user's run does): passed as vae=, not the teacher's fp32 VAE
    AutoencoderKL(**{**(TINY_VAE if tiny else SDXL_VAE), "force_upcast": False}).to(
        torch.float32 if tiny else torch.float16).save_pretrained(Path(folder).parent / "vae")
    n = sum(p.numel() for p in unet.parameters())
    del pipe, unet, vae, te, te2
    gc.collect(); torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return n

def build_data(folder, n, size):
    "n JPEGs of several aspect ratios around size px (smooth colours + noise) and letters-only captions."
    from PIL import Image
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    rng, rows = np.random.default_rng(0), []
    shapes = [(1, 1), (1.25, 1), (1, 1.25), (1, 1.5), (0.75, 1)]
    for i in range(n):
        fh, fw = shapes[i % len(shapes)]
        h, w = max(8, int(size * fh) // 8 * 8), max(8, int(size * fw) // 8 * 8)
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        c = rng.uniform(0, 255, (3, 3))
        img = c[:, 0] + c[:, 1] * xx[..., None] / 2 + c[:, 2] * yy[..., None] / 2 + rng.normal(0, 12, (h, w, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=90)
        words = " ".join("".join(rng.choice(list(LETTERS), rng.integers(3, 8))) for _ in range(rng.integers(2, 6)))
        rows.append(dict(file_name=f"{i:03d}.jpg", text=f"a picture of {words}"))
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

@contextlib.contextmanager
def _timed(owner, name, record):
    "Wrap owner.name so each call adds its seconds (and the peak memory at entry) to record; a missing name is left alone."
    orig = getattr(owner, name, None)
    if orig is None: yield; return
    cuda = torch.cuda.is_available()
    def wrapper(*a, **k):
        if cuda: torch.cuda.synchronize(); record.setdefault("peak_before_gib", torch.cuda.max_memory_allocated() / 2**30)
        t0 = time.perf_counter()
        try: return orig(*a, **k)
        finally:
            if cuda: torch.cuda.synchronize()
            record["seconds"] = record.get("seconds", 0.0) + time.perf_counter() - t0
            record["calls"] = record.get("calls", 0) + 1
    setattr(owner, name, wrapper)
    try: yield
    finally: setattr(owner, name, orig)

def _du(path):
    p = Path(path)
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**30 if p.exists() else 0.0

def run_loss(loss, params):
    "The main job for one loss, timed; its numbers."
    import directcms.run.training as training
    try: import matplotlib  # noqa: F401   (samples.png only; a bare device image may lack it)
    except ImportError: training.save_sample_grid = lambda *a, **k: print("matplotlib missing: samples.png skipped")
    from directcms.support.config import TrainConfig
    from directcms.presets.sdxl import SDXLPreset
    cuda = torch.cuda.is_available()
    if cuda: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    ev, ref = {}, {}
    t0 = time.perf_counter()
    with _timed(training, "evaluate", ev), _timed(SDXLPreset, "reference", ref):
        metrics = training.run(TrainConfig.from_params({**params, "loss": loss}), progress=False)
    wall = time.perf_counter() - t0
    out = Path(params["output_dir"])
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines() if l.strip()]
    secs = [r["sec"] for r in log]
    cfg = metrics.get("config", {})
    n_eval, ks = cfg.get("num_eval", params["num_eval"]), cfg.get("eval_steps", [1, 2, 4])
    student_s = ev.get("seconds", 0.0) - ref.get("seconds", 0.0)
    return dict(
        loss=loss, steps=len(log), wall_s=round(wall, 1),
        s_per_step=round(float(np.mean(secs)), 3) if secs else None,
        s_per_step_after_first=round(float(np.mean(secs[1:])), 3) if len(secs) > 1 else None,
        teacher_image_evals_per_step=float(np.mean([r["teacher_evals"] for r in log])) if log else None,
        loss_finite=all(math.isfinite(r["loss"]) for r in log),
        peak_train_gib=round(ev["peak_before_gib"], 2) if "peak_before_gib" in ev else None,
        peak_job_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        eval_s=round(ev.get("seconds", float("nan")), 1),
        teacher_reference_s=round(ref.get("seconds", 0.0), 1),       # 0 when the reference was cached (second loss)
        eval_student_images=n_eval * len(ks),
        eval_images_per_s=round(n_eval * len(ks) / student_s, 2) if student_s > 0 else None,
        checkpoint_gib=round(_du(out / "checkpoints"), 2),              # every checkpoint kept (accelerate state + LoRA)
        lora_mib=round(sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**20, 1),
        eval={k: {m: (v if isinstance(v, (int, float)) and math.isfinite(v) else None) for m, v in blk.items()}
              for k, blk in (metrics.get("eval") or {}).items() if isinstance(blk, dict)},   # skipped metrics: null
        output_dir=str(out))

def check_stock_diffusers(teacher, out, resolution, num_intervals, device, dtype):
    "Does a stock StableDiffusionXLPipeline load the LoRA and sample one LCMScheduler step? (ok, seconds, error)."
    from diffusers import LCMScheduler, StableDiffusionXLPipeline
    t0 = time.perf_counter()
    try:
        pipe = StableDiffusionXLPipeline.from_pretrained(teacher, torch_dtype=dtype).to(device)
        pipe.load_lora_weights(str(out))
        pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config, original_inference_steps=num_intervals)
        img = pipe("a picture of a cat", num_inference_steps=1, guidance_scale=0, height=resolution, width=resolution,
                   output_type="pt", generator=torch.Generator().manual_seed(0)).images
        ok, err = tuple(img.shape) == (1, 3, resolution, resolution), None
        finite = bool(torch.isfinite(img).all())
        del pipe
    except Exception as e:
        ok, err, finite = False, f"{type(e).__name__}: {e}"[:500], None
    gc.collect(); torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return dict(lora_loads_and_samples=ok, sample_finite=finite, seconds=round(time.perf_counter() - t0, 1), error=err)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU, tiny components, 64 px: the same code path in about a minute")
    ap.add_argument("--out", default="", help="folder for sdxl_smoke[_tiny].json with the numbers")
    ap.add_argument("--work", default="", help="folder for the pipeline, data and runs (default: a temporary one, removed)")
    ap.add_argument("--steps", type=int, default=3); ap.add_argument("--num-eval", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None); ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--losses", default="cm,direct")
    args = ap.parse_args(argv)
    tiny = args.tiny
    if not tiny and not torch.cuda.is_available(): sys.exit("no GPU: the full-size smoke run needs CUDA (use --tiny on a CPU)")
    device = "cpu" if tiny else "cuda"
    res = 64 if tiny else 1024
    n_img = args.images or (6 if tiny else 64)
    n_eval = args.num_eval or (4 if tiny else 32)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sdxl_smoke_"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    teacher, data = work / "teacher", work / "data"
    n_params = build_pipeline(teacher, tiny, device)
    build_data(data, n_img, res)
    build_s = time.perf_counter() - t0
    print(f"built: UNet {n_params / 1e9:.3f}B parameters, {n_img} images of ~{res} px, in {build_s:.0f} s ({work})", flush=True)
    params = dict(preset="sdxl-paper", teacher=str(teacher), vae=str(work / "vae"), data=str(data), resolution=res, max_steps=args.steps,
                  num_eval=n_eval, checkpoint_every=1000, assets_dir=str(work / "assets"), resume=False,
                  mixed_precision="no" if tiny else "fp16", metrics_weights={"missing": "skip"})   # no metric networks offline
    if args.batch_size: params["batch_size"] = args.batch_size
    if tiny: params.update(batch_size=args.batch_size or 2, num_intervals=10, eval_batch_size=2, lora_rank=4, eval_steps=[1, 2])
    results = dict(device=torch.cuda.get_device_name() if not tiny else "cpu", tiny=tiny, torch=torch.__version__,
                   unet_params=n_params, vae=params["vae"], resolution=res, images=n_img, num_eval=n_eval, build_s=round(build_s, 1), losses={})
    def save():
        if not args.out: return
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f"sdxl_smoke{'_tiny' if tiny else ''}.json").write_text(json.dumps(results, indent=1, default=str))
    save()
    for loss in args.losses.split(","):
        print(f"[{time.perf_counter() - t_all:5.0f} s] {loss}: training {args.steps} steps, then evaluating", flush=True)
        try:
            r = run_loss(loss, {**params, "output_dir": str(work / f"run-{loss}")})
            r["stock_diffusers"] = check_stock_diffusers(teacher, r["output_dir"], res, 10 if tiny else 100, device,
                                                         torch.float32 if tiny else torch.float16)
        except Exception as e:          # a smoke run reports what broke, and goes on to the other loss
            import traceback
            traceback.print_exc()
            r = dict(loss=loss, error=f"{type(e).__name__}: {e}"[:2000], traceback=traceback.format_exc()[-4000:])
            gc.collect(); torch.cuda.empty_cache() if torch.cuda.is_available() else None
        results["losses"][loss] = r
        save()
    results["total_s"] = round(time.perf_counter() - t_all, 1)
    save()
    f = lambda v, fmt: "-" if v is None else format(v, fmt)
    print(f"\n{'loss':<7} {'s/step':>7} {'teacher evals/step':>18} {'peak train GiB':>14} {'peak job GiB':>12} "
          f"{'eval img/s':>10} {'ckpt GiB':>8}  LoRA in stock diffusers")
    for loss, r in results["losses"].items():
        if "error" in r: print(f"{loss:<7} FAILED: {r['error'][:300]}"); continue
        sd = r["stock_diffusers"]
        print(f"{loss:<7} {f(r['s_per_step'], '7.2f')} {f(r['teacher_image_evals_per_step'], '18.1f')} "
              f"{f(r['peak_train_gib'], '14.1f')} {f(r['peak_job_gib'], '12.1f')} {f(r['eval_images_per_s'], '10.2f')} "
              f"{r['checkpoint_gib']:8.2f}  {'yes' if sd['lora_loads_and_samples'] else 'NO: ' + str(sd['error'])}")
    print(f"total {results['total_s']:.0f} s", flush=True)
    if not args.work: shutil.rmtree(work, ignore_errors=True)
    results["failed"] = [l for l, r in results["losses"].items() if "error" in r or not r["stock_diffusers"]["lora_loads_and_samples"]]
    return results

if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)
