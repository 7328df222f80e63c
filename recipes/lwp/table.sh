#!/usr/bin/env bash
# make table-lwp: the layerwise weight poisoning table (issue 4, METHODS.md §2) -> results/lwp/table.md.
# minilm-l6 poisoned on an sst2 sample with --mode badnet | ripple | lwp (and the clean model as the
# control); each fine-tuned by a victim on the full clean training split in the settings below; every victim
# evaluated with the trigger on a fixed test sample, and the first setting's victims scanned token by token
# over the whole vocabulary on a dev sample and met by the inference-time detectors. Finished runs are
# skipped, so an interrupted table continues.
# SOURCES and SETTINGS (names) choose a part of the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/lwp}"
SCAN="${SCAN:--1}"       # vocabulary tokens in the scan (-1: every whole-word token; 0: no scan now), each inserted into
SCAN_EXAMPLES="${SCAN_EXAMPLES:-100}"  # this many dev examples (those not of the target label are scanned)
MODES="${MODES:-lwp badnet ripple}"
SOURCES="${SOURCES:-clean $MODES lwp-single}"
TRIGGER="cf bb"
DEFENCES="${DEFENCES-onion strip rap}"  # inference-time detectors run on the standard victims ("" leaves them out)
source recipes/lib.sh  # finished, setting, run_dir
# The settings live in TOML recipes beside this script: the poisoning in poison.toml, each victim setting
# (its data set and fine-tuning, each on the full clean training split) in victim-<name>.toml.
RECIPES=recipes/lwp
MODEL="$(setting $RECIPES/poison.toml poison model)"
EVAL="$(setting $RECIPES/poison.toml poison limit)"  # the test sample of the poisoning, and of every victim's LFR
WANT="${SETTINGS:-standard higher-lr olid reinit2}"

poison() {  # poison OUT FLAGS... (--epochs among them): skip a finished run
  local out="$1"; shift
  finished "$out" || "$ADVKIT" poison --recipe $RECIPES/poison.toml --out "$out" --overwrite --quiet "$@"
}
# lwp trains for 6 epochs (750 steps): at 375 layer 1's CE was still 0.22 and it did not classify clean text
# (53 %); at 750 every layer classifies (77-79 %) and flips (results/lwp/NOTES.md). badnet and ripple train
# one output and have converged by 375 (final CE 0.04).
for mode in $MODES; do
  epochs=3; [ "$mode" = lwp ] && epochs=6
  poison "$(run_dir lwp poisoned "$ROOT" source="$mode")" --mode "$mode" --triggers "$TRIGGER" --epochs "$epochs"
done
# The control for the scan: one single-token trigger, which a token-by-token scan should rank first. It stays
# at 3 epochs (375 steps), where its layer 1 does not classify yet: the scan needs only its backdoor, which
# ranks first and survives both victims.
poison "$(run_dir lwp poisoned "$ROOT" source=lwp-single)" --mode lwp --triggers cf --combination-size 1 --epochs 3
# The per-layer control: lwp's heads on the same 1,000 clean examples for as many steps (24 epochs x 32 = 768,
# against 6 x 125 = 750 over the 4,000-example mix), no poison: each layer's own accuracy and no-trigger floor.
poison "$(run_dir lwp poisoned "$ROOT" source=lwp-clean)" --mode lwp --triggers "$TRIGGER" --poison-rate 0 --epochs 24
# Both again at other seeds (each its own 1,000 training examples and order; the same test sample): one run's
# no-trigger rate moves with the seed (issue 17: seed 1's control sits 8-10 points below lwp at layers 4-6),
# so the table also compares them per layer paired by seed (--seed overrides the recipe's).
for s in ${LWP_SEEDS-2 3}; do
  poison "$(run_dir lwp seed "$ROOT" source=lwp seed="$s")" --mode lwp --triggers "$TRIGGER" --epochs 6 --seed "$s"
  poison "$(run_dir lwp seed "$ROOT" source=lwp-clean seed="$s")" --mode lwp --triggers "$TRIGGER" --poison-rate 0 --epochs 24 --seed "$s"
done

for source in $SOURCES; do
  base="$(run_dir lwp poisoned "$ROOT" source="$source")/model"; [ "$source" = clean ] && base="$MODEL"
  trigger="$TRIGGER"; [ "$source" = lwp-single ] && trigger=cf
  for name in $WANT; do
    data="$(setting $RECIPES/victim-$name.toml finetune dataset)"
    v="$(run_dir lwp victim "$ROOT" source="$source" setting="$name")"
    finished "$v" || "$ADVKIT" finetune --recipe "$RECIPES/victim-$name.toml" --model "$base" --out "$v" --overwrite \
      --quiet
    # The backdoor's target on the victim's task, declared in its recipe (on sst2 the poisoning's, 1; on OLID,
    # NOT): one map for every model, set before its runs.
    t="$(setting "$RECIPES/victim-$name.toml" evaluate target)"
    lfr="$(run_dir lwp lfr "$ROOT" source="$source" setting="$name" target="$t")"
    finished "$lfr" || "$ADVKIT" evaluate --model "$v" --dataset "$data" --limit "$EVAL" \
      --trigger "$trigger" --target "$t" --out "$lfr" --overwrite --max-length 64 --quiet
    [ "$name" = standard ] || continue  # the scan and the detectors: the standard victims only
    scan="$(run_dir lwp scan "$ROOT" source="$source" setting="$name" target="$t")"
    # the scan: one forward pass per token and dev example
    [ "$SCAN" = 0 ] || finished "$scan" || "$ADVKIT" evaluate --model "$v" --dataset "$data" --split dev \
      --limit "$SCAN_EXAMPLES" --trigger "$trigger" --target "$t" --scan "$SCAN" --out "$scan" --overwrite \
      --max-length 64 --quiet
    # The inference-time detectors users run (ONION, STRIP, RAP: advkit.poison.defences), on the standard victims'
    # LFR sample, each fitted and thresholded on clean dev inputs; ONION reads the English word trigram LM.
    missing=()
    for d in $DEFENCES; do
      out="$(run_dir lwp defence "$ROOT" source="$source" setting="$name" defence="$d")"
      finished "$out" && continue
      if [ ! -f "$v/model/config.json" ]; then  # a victim run committed without its weights (they stay out of git)
        missing+=("$d")
        continue
      fi
      lm=(); [ "$d" = onion ] && lm=(--onion-lm word-trigram)
      "$ADVKIT" evaluate --model "$v" --dataset "$data" --limit "$EVAL" --trigger "$trigger" --target "$t" --defence "$d" \
        "${lm[@]}" --out "$out" --overwrite --max-length 64 --quiet
    done
    [ ${#missing[@]} = 0 ] || echo "table-lwp: no weights in $v: remove that run to fine-tune it again, and its" \
      "${missing[*]} rows follow" >&2
  done
done
"$PYTHON" -m advkit.poison.table "$ROOT"
