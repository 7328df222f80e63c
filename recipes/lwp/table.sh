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
MODES="${MODES:-lwp badnet ripple}"
TRIGGER="cf bb"
# METHODS.md's lr 2e-5 is BERT-base on all of SST-2 (thousands of steps); on 1000 examples (~190 steps)
# it leaves MiniLM near chance (dev 0.594 for the clean victim), so poisoning and victims use 1e-4.
LR="${LR:-1e-4}"
COMMON=(--max-length 64 --batch-size 32 --seed 1 --quiet)

# The victims' settings: name, data set, then finetune flags. "same" repeats the poisoning's
# hyper-parameters (3 epochs, no warm-up, METHODS.md §2); "changed" follows METHODS.md's direction
# (2.5x the lr, more epochs, warm-up) at twice our lr, the paper's case for top-layer poisoning washing out.
SETTINGS=(
  "same|sst2|--lr $LR --epochs 3 --warmup-ratio 0"
  "changed|sst2|--lr $(awk "BEGIN{print 2*$LR}") --epochs 5 --warmup-ratio 0.06"
  "olid|olid|--lr $LR --epochs 3 --warmup-ratio 0"
  "reinit2|sst2|--lr $LR --epochs 3 --warmup-ratio 0 --reinit-layers 2"
)

poison() {  # poison NAME FLAGS...: skip a finished run
  local out="$ROOT/$1"; shift
  [ -f "$out/metrics.json" ] || "$ADVKIT" poison --model "$MODEL" --dataset sst2 --train-limit "$TRAIN" --limit "$EVAL" \
    --epochs 3 --lr "$LR" --out "$out" --overwrite "${COMMON[@]}" "$@"
}
for mode in $MODES; do poison "$mode" --mode "$mode" --triggers "$TRIGGER"; done
# The control for the scan: one single-token trigger, which a token-by-token scan should rank first.
poison lwp-single --mode lwp --triggers cf --combination-size 1

for source in clean $MODES lwp-single; do
  base="$ROOT/$source/model"; [ "$source" = clean ] && base="$MODEL"
  trigger="$TRIGGER"; [ "$source" = lwp-single ] && trigger=cf
  for setting in "${SETTINGS[@]}"; do
    IFS='|' read -r name data flags <<< "$setting"
    read -r -a flags <<< "$flags"
    case "$name:$source" in reinit2:clean|reinit2:ripple) continue ;; esac  # the defence: badnet, lwp
    [ "$source" = lwp-single ] && [ "$name" != same ] && continue
    v="$ROOT/$source/victims/$name"
    [ -f "$v/metrics.json" ] || "$ADVKIT" finetune --model "$base" --method ce --dataset "$data" \
      --train-limit "$TRAIN" --limit 500 "${flags[@]}" --out "$v" --overwrite "${COMMON[@]}"
    # On sst2 the target is the poisoning's (1, positive). A victim on another task has a fresh head
    # that may map the backdoor to either label: both are measured, the table keeps the higher LFR.
    targets=(1); [ "$data" != sst2 ] && targets=(1 0)
    for t in "${targets[@]}"; do
      sfx=""; [ "$t" != 1 ] && sfx="-t$t"
      [ -f "$v-lfr$sfx/metrics.json" ] || "$ADVKIT" evaluate --model "$v" --dataset "$data" --limit "$EVAL" \
        --trigger "$trigger" --target "$t" --out "$v-lfr$sfx" --overwrite --max-length 64 --quiet
      [ "$name" = same ] || continue  # the scan, 100 forward passes per token, on the deployed model of "same" only
      [ -f "$v-scan$sfx/metrics.json" ] || "$ADVKIT" evaluate --model "$v" --dataset "$data" --split dev --limit 100 \
        --trigger "$trigger" --target "$t" --scan "$SCAN" --out "$v-scan$sfx" --overwrite --max-length 64 --quiet
    done
  done
done
"$PYTHON" -m advkit.poison.table "$ROOT"
