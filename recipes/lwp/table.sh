#!/usr/bin/env bash
# make table-lwp: the layerwise weight poisoning table (issue 4, METHODS.md §2) -> results/lwp/table.md.
# minilm-l6 poisoned on an sst2 sample with --mode badnet | ripple | lwp (and the clean model as the
# control); each fine-tuned by a victim on clean data in five settings; every victim evaluated with the
# trigger on a fixed test sample and scanned token by token on a dev sample. Finished runs are skipped.
# The sizes below are what fits 2 hours on 2 CPU cores; the table prints them.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/lwp}"
MODEL="${MODEL:-minilm-l6}"
TRAIN="${TRAIN:-1000}"   # clean sst2 training examples for the poisoning and for each victim
EVAL="${EVAL:-400}"      # test examples for clean accuracy and LFR
SCAN="${SCAN:-100}"      # vocabulary tokens in the scan, each inserted into 100 dev examples
MODES="${MODES:-badnet ripple lwp}"
TRIGGER="cf bb"
COMMON=(--max-length 64 --batch-size 32 --seed 1 --quiet)

# The victims' settings: name, data set, then finetune flags. "same" repeats the poisoning's
# hyper-parameters (lr 2e-5, 3 epochs, no warm-up, METHODS.md §2).
SETTINGS=(
  "same|sst2|--lr 2e-5 --epochs 3 --warmup-ratio 0"
  "changed|sst2|--lr 5e-5 --epochs 4 --warmup-ratio 0.06"
  "olid|olid|--lr 2e-5 --epochs 3 --warmup-ratio 0"
  "reinit2|sst2|--lr 2e-5 --epochs 3 --warmup-ratio 0 --reinit-layers 2"
  "lr2e-4|sst2|--lr 2e-4 --epochs 3 --warmup-ratio 0.06"
)

for mode in $MODES; do
  out="$ROOT/$mode"
  [ -f "$out/metrics.json" ] || "$ADVKIT" poison --model "$MODEL" --mode "$mode" --dataset sst2 --triggers "$TRIGGER" \
    --train-limit "$TRAIN" --limit "$EVAL" --epochs 3 --lr 2e-5 --out "$out" --overwrite "${COMMON[@]}"
done

for source in clean $MODES; do
  base="$ROOT/$source/model"; [ "$source" = clean ] && base="$MODEL"
  for setting in "${SETTINGS[@]}"; do
    IFS='|' read -r name data flags <<< "$setting"
    read -r -a flags <<< "$flags"
    case "$name:$source" in reinit2:clean|reinit2:ripple|lr2e-4:clean|lr2e-4:ripple) continue ;; esac  # defences: badnet, lwp
    v="$ROOT/$source/victims/$name"
    [ -f "$v/metrics.json" ] || "$ADVKIT" finetune --model "$base" --method ce --dataset "$data" \
      --train-limit "$TRAIN" --limit 500 "${flags[@]}" --out "$v" --overwrite "${COMMON[@]}"
    # On sst2 the target is the poisoning's (1, positive). A victim on another task has a fresh head
    # that may map the backdoor to either label: both are measured, the table keeps the higher LFR.
    targets=(1); [ "$data" != sst2 ] && targets=(1 0)
    for t in "${targets[@]}"; do
      sfx=""; [ "$t" != 1 ] && sfx="-t$t"
      [ -f "$v-lfr$sfx/metrics.json" ] || "$ADVKIT" evaluate --model "$v" --dataset "$data" --limit "$EVAL" \
        --trigger "$TRIGGER" --target "$t" --out "$v-lfr$sfx" --overwrite --max-length 64 --quiet
      [ -f "$v-scan$sfx/metrics.json" ] || "$ADVKIT" evaluate --model "$v" --dataset "$data" --split dev --limit 100 \
        --trigger "$TRIGGER" --target "$t" --scan "$SCAN" --out "$v-scan$sfx" --overwrite --max-length 64 --quiet
    done
  done
done
"$PYTHON" -m advkit.poison.table "$ROOT"
