#!/usr/bin/env bash
# make table-zh: Chinese attacks with sentence-piece substitutes (issues 5 and 18, METHODS.md §3) -> results/zh/table.md.
# The piece LM (advkit build-piece-lm, default size); victims fine-tuned from albert-tiny-zh (it reads
# Traditional: every input converted with OpenCC s2tw; victim.toml, the weak contrast) and from m3e-small
# (Simplified, the whole training split: victim-m3e-small.toml), each until its accuracy on 10 % of train held
# out stops improving (--patience 1); a label judge per victim model and data set, of another family
# (judges.toml: m3e-small judges albert-tiny-zh, roformer-zh judges m3e-small), fine-tuned apart and never
# attacked, which says whether each adversarial text keeps its label; every substitute generator on a fixed
# slice of each dev split, with the label check (UNCHECKED: also without it). Fluency: the character
# trigram judge (advkit/fluency.py). Finished runs are skipped, so an interrupted table continues where it
# stopped (the albert-tiny-zh sections took 39 min here).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/zh}"
# The table's sections, victim model:data set: the weak victims (albert-tiny-zh) and the strong ones
# (m3e-small). On lcqmc's question pairs the second question is attacked, the first held fixed.
SECTIONS="${SECTIONS:-albert-tiny-zh:chnsenticorp albert-tiny-zh:thucnews m3e-small:chnsenticorp m3e-small:thucnews m3e-small:tnews m3e-small:lcqmc}"
GENERATORS="${GENERATORS:-pieces spans chars words glyph homophone}"
UNCHECKED="${UNCHECKED:-}"  # generators also run with --label-check none: how much success is label flips
# The settings of the judges, victims and attacks: TOML recipes beside this script (judge, victim, attack).
RECIPES=recipes/zh
read -r -a EXTRA <<< "${EXTRA:-}"  # e.g. EXTRA="--max-queries 200" for a quick run
source recipes/lib.sh  # finished, run_dir, setting, go_on


if [ -z "${LM:-}" ]; then
  if "$ADVKIT" list models | grep -q "^piece-lm-zh .*not built"; then "$ADVKIT" build-piece-lm --quiet; fi
  LM=piece-lm-zh
fi

attack() {  # model data-set generator label-check judge-folder
  local v out args=() resume=(--overwrite)
  v="$(run_dir zh victim "$ROOT" model="$1" dataset="$2")"
  out="$(run_dir zh attack "$ROOT" model="$1" dataset="$2" generator="$3" check="$4")"
  { [ "$3" = pieces ] || [ "$3" = spans ]; } && args=(--lm "$LM")
  [ "$2" = lcqmc ] && args+=(--attacked second)  # pairs: the second question
  finished "$out" && return
  [ -f "$out/run.json" ] && resume=(--resume)
  "$ADVKIT" attack-zh --recipe $RECIPES/attack.toml --model "$v" --dataset "$2" --substitutes "$3" "${args[@]}" \
    --label-check "$4" --judge "$5" --out "$out" "${resume[@]}" --quiet "${EXTRA[@]}"
}

started=$(date +%s)
for section in $SECTIONS; do
  model="${section%%:*}" ds="${section#*:}"
  judge="$(setting $RECIPES/judges.toml judge "$model")"  # another family than the victim's
  j="$(run_dir zh judge "$ROOT" dataset="$ds" judge="$judge")"
  finished "$j" || "$ADVKIT" finetune --recipe $RECIPES/judge.toml --model "$judge" --dataset "$ds" --out "$j" \
    "$(go_on "$j")" --quiet
  v="$(run_dir zh victim "$ROOT" model="$model" dataset="$ds")"
  recipe=$RECIPES/victim.toml; [ -f "$RECIPES/victim-$model.toml" ] && recipe="$RECIPES/victim-$model.toml"
  finished "$v" || "$ADVKIT" finetune --recipe "$recipe" --model "$model" --dataset "$ds" --out "$v" "$(go_on "$v")" \
    --quiet
  for g in $GENERATORS; do attack "$model" "$ds" "$g" lexicon "$j"; done
  for g in $UNCHECKED; do attack "$model" "$ds" "$g" none "$j"; done
done
echo "table-zh: $(( ($(date +%s) - started) / 60 )) min for SECTIONS='$SECTIONS' (finished runs skipped)"
"$PYTHON" -m advkit.attack_zh.table "$ROOT"
