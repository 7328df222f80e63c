#!/usr/bin/env bash
# make table-zh: Chinese attacks with sentence-piece substitutes (issue 5, METHODS.md §3) -> results/zh/table.md.
# The piece LM (advkit build-piece-lm, default size), victims fine-tuned from albert-tiny-zh and
# m3e-small on chnsenticorp, thucnews, tnews and lcqmc (pairs: the first sentence is attacked), and
# every substitute generator on a fixed slice of each dev split, with the label check (and pieces
# and chars also without it). Finished runs are skipped, so an
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
UNCHECKED="${UNCHECKED:-pieces chars}"  # also run with --label-check none: how much success is label flips
read -r -a EXTRA <<< "${EXTRA:-}"  # e.g. EXTRA="--max-queries 200" for a quick run

if [ -z "${LM:-}" ]; then
  if "$ADVKIT" list models | grep -q "^piece-lm-zh .*not built"; then "$ADVKIT" build-piece-lm --quiet; fi
  LM=piece-lm-zh
fi

attack() {  # model data-set generator label-check
  local v="$ROOT/victims/$1/$2" out="$ROOT/attacks/$1/$2/$3" lm=() resume=(--overwrite)
  [ "$4" = none ] && out="$out-nocheck"
  [ "$3" = pieces ] && lm=(--lm "$LM")
  [ -f "$out/metrics.json" ] && return
  [ -f "$out/run.json" ] && resume=(--resume)
  "$ADVKIT" attack-zh --model "$v" --dataset "$2" --split dev --limit "$LIMIT" --substitutes "$3" "${lm[@]}" \
    --label-check "$4" --max-length 64 --out "$out" "${resume[@]}" --quiet "${EXTRA[@]}"
}

started=$(date +%s)
for model in $VICTIMS; do
  for ds in $DATASETS; do
    v="$ROOT/victims/$model/$ds"
    [ -f "$v/metrics.json" ] || "$ADVKIT" finetune --model "$model" --dataset "$ds" --method ce --train-limit "$TRAIN" \
      --limit 1000 --epochs 1 --max-length 64 --out "$v" --overwrite --quiet
    for g in $GENERATORS; do attack "$model" "$ds" "$g" lexicon; done
    for g in $UNCHECKED; do attack "$model" "$ds" "$g" none; done
  done
done
echo "table-zh: $(( ($(date +%s) - started) / 60 )) min for VICTIMS='$VICTIMS' DATASETS='$DATASETS' (finished runs skipped)"
"$PYTHON" -m advkit.attack_zh.table "$ROOT"
