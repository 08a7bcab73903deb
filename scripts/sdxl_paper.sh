#!/usr/bin/env bash
# The paper's configuration end to end on GPUs (Vouitsis et al. 2024): teacher references, CM and Direct CM LoRA
# students (SDXL, rank 64, DDIM N = 100, w = 9, 250 steps, batch 16, fp16), evaluation, Table 1 and the figures.
# Every stage resumes: finished runs are reused, interrupted ones continue from their last checkpoint, and the
# teacher's reference samples are cached in runs/sdxl-paper/.
#
#   TEACHER=weights/sdxl VAE=weights/sdxl-vae-fp16-fix DATA=data/laion-aesthetics-6.5 bash scripts/sdxl_paper.sh
#   NUM_GPUS=8 SEEDS=3 ... bash scripts/sdxl_paper.sh      # accelerate launch over 8 GPUs, 3 seeds per loss
#
# TEACHER and VAE are local folders (or hub ids on a machine with internet: fetched before the processes start);
# DATA is an image-caption folder (images plus metadata.csv or metadata.jsonl with file_name and text). Needs
# `pip install -e ".[paper]"`. METRICS_WEIGHTS is a Python dict literal of local metric weights for a machine without
# internet, e.g. "{'aesthetic_weights': 'weights/sac+logos+ava1-l14-linearMSE.pth', 'clip_model': 'weights/clip'}";
# every metric of Table 1 is checked before training starts, and a missing one stops the run naming what to provide.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to the image-caption folder}"
TEACHER=${TEACHER:-stabilityai/stable-diffusion-xl-base-1.0}
VAE=${VAE:-madebyollin/sdxl-vae-fp16-fix}
NUM_GPUS=${NUM_GPUS:-1}
SEEDS=${SEEDS:-1}
METRICS_WEIGHTS=${METRICS_WEIGHTS:-"{}"}
mkdir -p runs figures/sdxl-paper

for seed in $(seq 0 $((SEEDS - 1))); do
  for loss in cm direct; do
    out=runs/sdxl-paper-$loss-seed$seed
    if [ -f "$out/metrics.json" ]; then echo "reusing $out"; continue; fi
    accelerate launch --num_processes "$NUM_GPUS" --mixed_precision fp16 scripts/train.py \
      preset=sdxl-paper loss=$loss seed=$seed teacher="$TEACHER" vae="$VAE" data="$DATA" \
      metrics_weights="$METRICS_WEIGHTS" output_dir="$out" assets_dir=runs/sdxl-paper
  done
done

# Table 1 and the figures, from the finished runs only.
papermill nbs/figures.ipynb runs/figures-sdxl-paper.ipynb -p preset sdxl-paper -p seeds "$SEEDS" \
  -p teacher "$TEACHER" -p vae "$VAE" -p data "$DATA" -p figures_dir figures/sdxl-paper
