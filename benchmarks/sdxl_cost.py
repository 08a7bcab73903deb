"""The paper's SDXL job on GPUs, phase by phase: work counted from the code's own rules, time derived from two
assumed unit costs (not measured: no GPU has been lent to this project yet), and the size of a LoRA-64 checkpoint
counted on SDXL's real UNet architecture (built on the meta device: no weights, no download).

    python benchmarks/sdxl_cost.py                                  # writes benchmarks/results/sdxl_cost.json
    python benchmarks/sdxl_cost.py --unet-pass-s 0.025 --decode-s 0.08   # your GPU's measured unit costs

Units: one *UNet pass* is one image through the UNet at 1024 px; a guided teacher evaluation (what log.jsonl's
`teacher_evals` counts, summed over processes) is two passes (conditional and unconditional in one batch). The
training backward is counted as two passes, the student's and the CM target's forwards as one each.
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def lora_parameters(rank: int = 64) -> int:
    "Trainable parameters of directcms' LoRA of the given rank on SDXL base 1.0's UNet (meta device)."
    import importlib.util, torch
    from diffusers import UNet2DConditionModel
    sys.path.insert(0, str(ROOT))
    from directcms.core.lora import add_lora
    spec = importlib.util.spec_from_file_location("sdxl_smoke", ROOT / "benchmarks" / "sdxl_smoke.py")
    smoke = importlib.util.module_from_spec(spec); spec.loader.exec_module(smoke)
    with torch.device("meta"): unet = UNet2DConditionModel(**smoke.SDXL_UNET)
    return sum(p.numel() for p in add_lora(unet, rank).parameters() if p.requires_grad)

def phases(captions=10_274, N=100, steps=250, batch=16, eval_steps=(1, 2, 4)) -> dict:
    "(UNet passes, VAE decodes) of each phase of scripts/sdxl_paper.sh for one seed."
    k = sum(eval_steps)
    return {
        "CM training (250 steps)": (steps * batch * (2 + 1 + 2 + 1), 0),             # teacher step, student fwd+bwd, target
        "teacher reference (N-step, every caption)": (captions * N * 2, 2 * captions),  # decoded for JPEG and for CLIP
        "teacher DDIM rows (k = 1, 2, 4)": (captions * k * 2, len(eval_steps) * captions),
        "CM evaluation (k = 1, 2, 4)": (captions * k, len(eval_steps) * captions),
        "Direct CM training (250 steps)": (steps * batch * (N // 2 * 2 + 1 + 2), 0),   # on average N/2 guided steps
        "Direct CM evaluation (k = 1, 2, 4)": (captions * k, len(eval_steps) * captions),
    }

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unet-pass-s", type=float, default=0.02, help="seconds per UNet pass of one 1024 px image (fp16, batched)")
    ap.add_argument("--decode-s", type=float, default=0.1, help="seconds per VAE decode of one 1024 px image")
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sdxl_cost.json"))
    a = ap.parse_args(argv)
    rows = []
    for name, (passes, decodes) in phases().items():
        sec = passes * a.unet_pass_s + decodes * a.decode_s
        rows.append(dict(phase=name, unet_passes=passes, vae_decodes=decodes,
                         **{f"hours_{g}_gpu": round(sec / g / 3600, 2) for g in a.gpus}))
    total = {f"hours_{g}_gpu": round(sum(r[f"hours_{g}_gpu"] for r in rows), 1) for g in a.gpus}
    n = lora_parameters(64)
    ckpt = dict(lora_rank=64, trainable_parameters=n,
                gib_adamw=round(n * (4 + 8 + 4) / 2**30, 2),     # fp32 weights + 2 fp32 moments + the exported fp32 LoRA
                gib_adamw8bit=round(n * (4 + 2 + 4) / 2**30, 2))  # 8-bit moments (bitsandbytes)
    out = dict(assumptions=dict(unet_pass_s=a.unet_pass_s, decode_s=a.decode_s, measured=False,
                                note="unit costs assumed for an H100-class GPU in fp16; metric networks and I/O not counted"),
               phases=rows, total=total, checkpoint=ckpt)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    for r in rows: print(f"{r['phase']:<45} {r['unet_passes']:>10,} passes {r['vae_decodes']:>7,} decodes  " +
                         "  ".join(f"{r[f'hours_{g}_gpu']:6.2f} h on {g}" for g in a.gpus))
    print(f"{'total':<71}  " + "  ".join(f"{total[f'hours_{g}_gpu']:6.1f} h on {g}" for g in a.gpus))
    print(f"LoRA-64 checkpoint: {n:,} trainable parameters, {ckpt['gib_adamw']} GiB (AdamW), {ckpt['gib_adamw8bit']} GiB (8-bit AdamW)")
    return out

if __name__ == "__main__":
    main()
