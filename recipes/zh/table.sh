#!/usr/bin/env bash
# make table-zh: Chinese attacks with sentence-piece substitutes (issue 5, METHODS.md §3) -> results/zh/table.md.
# The piece LM (advkit build-piece-lm, default size), victims fine-tuned from albert-tiny-zh and
# m3e-small on chnsenticorp, thucnews, tnews and lcqmc (pairs: the first sentence is attacked), and
# every substitute generator on a fixed slice of each dev split. Finished runs are skipped, so an
# interrupted table continues where it stopped. Sizes are what fits 2 hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/zh}"
VICTIMS="${VICTIMS:-albert-tiny-zh m3e-small}"
DATASETS="${DATASETS:-chnsenticorp thucnews tnews lcqmc}"
GENERATORS="${GENERATORS:-pieces chars words glyph homophone}"
TRAIN="${TRAIN:-3000}"   # training examples per victim (one epoch)
LIMIT="${LIMIT:-40}"     # attacked dev examples per victim and data set
read -r -a EXTRA <<< "${EXTRA:-}"  # e.g. EXTRA="--max-queries 200" for a quick run

if [ -z "${LM:-}" ]; then
  if "$ADVKIT" list models | grep -q "^piece-lm-zh .*not built"; then "$ADVKIT" build-piece-lm --quiet; fi
  LM=piece-lm-zh
fi

for model in $VICTIMS; do
  for ds in $DATASETS; do
    v="$ROOT/victims/$model/$ds"
    [ -f "$v/metrics.json" ] || "$ADVKIT" finetune --model "$model" --dataset "$ds" --method ce --train-limit "$TRAIN" \
      --limit 1000 --epochs 1 --max-length 64 --out "$v" --overwrite --quiet
    for g in $GENERATORS; do
      out="$ROOT/attacks/$model/$ds/$g"
      lm=(); [ "$g" = pieces ] && lm=(--lm "$LM")
      if [ ! -f "$out/metrics.json" ]; then
        resume=(--overwrite); [ -f "$out/run.json" ] && resume=(--resume)
        "$ADVKIT" attack-zh --model "$v" --dataset "$ds" --split dev --limit "$LIMIT" --substitutes "$g" "${lm[@]}" \
          --max-length 64 --out "$out" "${resume[@]}" --quiet "${EXTRA[@]}"
      fi
    done
  done
done
"$PYTHON" -m advkit.attack_zh.table "$ROOT"
