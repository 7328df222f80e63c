#!/usr/bin/env bash
# make bench: every ratio benchmark in one go, then bench/results.md from their JSON files.
# PWWS_N / ZH_N set the attack benchmarks' example counts (100 each: about an hour in all here).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python
PWWS_N="${PWWS_N:-100}"
ZH_N="${ZH_N:-100}"
CE="${CE:-runs/demo/ce}"  # the CE model of `make demo` (the foundation command)
if [ ! -f "$CE/metrics.json" ] || [ ! -f "$CE/model/config.json" ]; then  # the attacks need its weights
  .venv/bin/advkit finetune --model minilm-l6 --dataset sst2 --train-limit 2000 --epochs 1 --seed 1 --out "$CE" \
    --overwrite --quiet
fi
$PY bench/knn_memory.py
$PY bench/knn_inference.py
$PY bench/knn_epoch.py
$PY bench/at_epoch.py 1000 1
$PY bench/shard_attack.py "$CE" 100
$PY bench/query_precision.py 2000
$PY bench/window_attack.py "$CE" 30
$PY bench/pwws_vs_textattack.py "$CE" "$PWWS_N"
if .venv/bin/advkit list models | grep -q "^piece-lm-zh .*not built"; then .venv/bin/advkit build-piece-lm --quiet; fi
$PY bench/zh_vs_textattack.py --limit "$ZH_N"
$PY bench/piece_proposers.py 1000
$PY bench/label_check_context.py
$PY bench/fluency_judges.py
if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  $PY bench/gpu_check.py --out bench/out/gpu_check.json
fi
$PY bench/report.py
