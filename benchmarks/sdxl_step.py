"""Seconds per training step, teacher calls per step and peak memory of CM and Direct CM on an SDXL-size UNet.

    python benchmarks/sdxl_step.py                       # GPU: the real SDXL UNet architecture, random weights, bf16
    python benchmarks/sdxl_step.py --tiny --device cpu   # a smoke run of the same code path on a tiny UNet

The UNet is built from SDXL base 1.0's config (2.6B parameters, no download) with a rank-64 LoRA on the paper's
target modules and gradient checkpointing; latents and prompt embeddings are random, so no VAE or text encoder is
needed. Both losses run the library's own code (SDXLEps, cfg_eps with w = 9 in one forward, ConsistencyModel,
consistency_distillation_loss with the active-samples-only Direct CM target), side by side in one process.
"""
import argparse, time
import torch
from diffusers import UNet2DConditionModel
from directcms.core.schedules import alphas_cumprod_from_config, timestep_grid
from directcms.core.guidance import cfg_eps
from directcms.core.parameterization import ConsistencyModel
from directcms.core.losses import consistency_distillation_loss
from directcms.core.lora import add_lora, adapters_disabled
from directcms.presets.sdxl import SDXLEps, sdxl_uncond

SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280), layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                 addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                 use_linear_projection=True, norm_num_groups=32)
TINY_UNET = dict(SDXL_UNET, sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 1), attention_head_dim=(2, 4), cross_attention_dim=64,
                 addition_time_embed_dim=8, projection_class_embeddings_input_dim=80, norm_num_groups=8)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true"); ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-size", type=int, default=16); ap.add_argument("--intervals", type=int, default=100)
    ap.add_argument("--steps", type=int, default=3); ap.add_argument("--rank", type=int, default=64)
    args = ap.parse_args()
    dev, dtype = torch.device(args.device), (torch.float32 if args.tiny else torch.bfloat16)
    cfg = TINY_UNET if args.tiny else SDXL_UNET
    unet = UNet2DConditionModel(**cfg).to(dev, dtype)
    unet.enable_gradient_checkpointing()
    add_lora(unet, args.rank)
    for p in unet.parameters():
        if p.requires_grad: p.data = p.data.float()        # LoRA weights in fp32, as in mixed-precision training
    ac = alphas_cumprod_from_config().to(dev)
    student = ConsistencyModel(SDXLEps(unet), ac.float()).train()
    base = SDXLEps(unet)
    def teacher_model(x, t, **c):
        with adapters_disabled(unet): return base(x, t, **c)
    teacher = cfg_eps(teacher_model, 9.0, sdxl_uncond)
    B, res = args.batch_size, cfg["sample_size"]
    text_dim = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(B, 4, res, res, generator=g).to(dev)
    cond = dict(prompt_embeds=torch.randn(B, 77, cfg["cross_attention_dim"], generator=g).to(dev),
                text_embeds=torch.randn(B, text_dim, generator=g).to(dev),
                time_ids=torch.tensor([[8 * res, 8 * res, 0, 0, 8 * res, 8 * res]] * B, dtype=torch.float32).to(dev))
    opt = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-2)
    grid = timestep_grid(1000, args.intervals).to(dev)
    print(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e9:.2f}B parameters on {dev}, batch {B}, "
          f"latents {res}x{res}, N={args.intervals}, w=9, LoRA rank {args.rank}")
    print(f"{'loss':<8} {'s/step':>8} {'teacher evals/step':>19} {'peak GiB':>9}")
    for name, k in (("cm", 1), ("direct", "all")):
        times, evals = [], []
        if dev.type == "cuda": torch.cuda.reset_peak_memory_stats()
        for step in range(args.steps + 1):
            if dev.type == "cuda": torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=dtype, enabled=not args.tiny):
                loss, d = consistency_distillation_loss(student, student, teacher, x0, grid, ac, cond, target_steps=k,
                                                        generator=torch.Generator().manual_seed(step))
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            if dev.type == "cuda": torch.cuda.synchronize()
            if step: times.append(time.perf_counter() - t0); evals.append(d["teacher_evals"])   # step 0 warms up
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
        print(f"{name:<8} {sum(times) / len(times):8.2f} {sum(evals) / len(evals):19.1f} {peak:9.1f}")

if __name__ == "__main__":
    main()
