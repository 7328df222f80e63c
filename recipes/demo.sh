#!/usr/bin/env bash
# The main job on the built-in defaults: fine-tune MiniLM on an SST-2 slice, then its
# report card (clean accuracy, PWWS, DeepWordBug, TextFooler on a fixed test slice).
set -euo pipefail
export HF_HUB_OFFLINE=1
advkit=.venv/bin/advkit
$advkit finetune --method ce --model minilm-l6 --dataset sst2 --train-limit 2000 --epochs 1 --seed 1 \
  --out runs/demo/ce --overwrite
$advkit evaluate --card --model runs/demo/ce --dataset sst2 --split test --limit 40 --seed 1 \
  --out runs/demo/card --overwrite
echo "done: runs/demo/ce/metrics.json and runs/demo/card/card.md"
