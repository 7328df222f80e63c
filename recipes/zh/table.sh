#!/usr/bin/env bash
# make table-zh: Chinese attacks with sentence-piece substitutes (issues 5 and 18, METHODS.md §3) -> results/zh/table.md.
# The piece LM (advkit build-piece-lm, default size); victims fine-tuned from albert-tiny-zh (it reads
# Traditional: every input converted with OpenCC s2tw) on TRAIN examples until their accuracy on 10 % of
# train held out stops improving (--patience 1); a judge per data set, m3e-small fine-tuned on
# JUDGE_TRAIN examples and never attacked, which says whether each adversarial text keeps its label;
# every substitute generator on a fixed slice of each dev split, with the label check (UNCHECKED:
# also without it). Fluency: the character trigram judge (advkit/fluency.py). Finished runs are skipped,
# so an interrupted table continues where it stopped. The committed table is this script's defaults
# (39 min here).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/zh}"
VICTIMS="${VICTIMS:-albert-tiny-zh}"
DATASETS="${DATASETS:-chnsenticorp thucnews}"
GENERATORS="${GENERATORS:-pieces spans chars words glyph homophone}"
TRAIN="${TRAIN:-3000}"   # training examples per victim (90 % trained on, 10 % measure convergence)
EPOCHS="${EPOCHS:-6}"    # the most epochs a victim trains (it stops when held-out accuracy stops improving)
JUDGE_TRAIN="${JUDGE_TRAIN:-6000}"  # training examples of the judge (m3e-small, 1 epoch, seed 2)
LIMIT="${LIMIT:-200}"    # attacked dev examples per victim and data set (the victim gets ~150+ right)
UNCHECKED="${UNCHECKED:-}"  # generators also run with --label-check none: how much success is label flips
read -r -a EXTRA <<< "${EXTRA:-}"  # e.g. EXTRA="--max-queries 200" for a quick run

if [ -z "${LM:-}" ]; then
  if "$ADVKIT" list models | grep -q "^piece-lm-zh .*not built"; then "$ADVKIT" build-piece-lm --quiet; fi
  LM=piece-lm-zh
fi

attack() {  # model data-set generator label-check
  local v="$ROOT/victims/$1/$2" out="$ROOT/attacks/$1/$2/$3" lm=() resume=(--overwrite)
  [ "$4" = none ] && out="$out-nocheck"
  { [ "$3" = pieces ] || [ "$3" = spans ]; } && lm=(--lm "$LM")
  [ -f "$out/metrics.json" ] && return
  [ -f "$out/run.json" ] && resume=(--resume)
  "$ADVKIT" attack-zh --model "$v" --dataset "$2" --split dev --limit "$LIMIT" --substitutes "$3" "${lm[@]}" \
    --label-check "$4" --judge "$ROOT/judges/$2" --max-length 64 --out "$out" "${resume[@]}" --quiet "${EXTRA[@]}"
}

started=$(date +%s)
for ds in $DATASETS; do
  j="$ROOT/judges/$ds"
  [ -f "$j/metrics.json" ] || "$ADVKIT" finetune --model m3e-small --dataset "$ds" --method ce \
    --train-limit "$JUDGE_TRAIN" --limit 1000 --epochs 1 --max-length 64 --seed 2 --out "$j" --overwrite --quiet
  for model in $VICTIMS; do
    v="$ROOT/victims/$model/$ds"
    [ -f "$v/metrics.json" ] || "$ADVKIT" finetune --model "$model" --dataset "$ds" --method ce --train-limit "$TRAIN" \
      --limit 1000 --epochs "$EPOCHS" --patience 1 --max-length 64 --out "$v" --overwrite --quiet
    for g in $GENERATORS; do attack "$model" "$ds" "$g" lexicon; done
    for g in $UNCHECKED; do attack "$model" "$ds" "$g" none; done
  done
done
echo "table-zh: $(( ($(date +%s) - started) / 60 )) min for VICTIMS='$VICTIMS' DATASETS='$DATASETS' (finished runs skipped)"
"$PYTHON" -m advkit.attack_zh.table "$ROOT"
