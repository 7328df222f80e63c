#!/usr/bin/env bash
# make table-knn: the KNN-BERT table (issues 3 and 16) -> results/knn/table.md and the run directories behind it.
# minilm-l6 on sst2, agnews, olid, imdb; CE, SCL, MoCo, KNN; rich-source (sizes and epochs in
# recipes/knn/*.toml and in the table; sst2: the full training split, trained until dev accuracy stops
# improving) and 16-shot over 5 seeds. Finished runs are skipped, so an interrupted table continues
# where it stopped. ATTACK_LIMIT=N adds accuracy under each of ATTACKS (pwws, deepwordbug) on N test
# examples for the rich-source CE and KNN models (0, the default, leaves the columns empty).
# METHODS and DATASETS choose a part of the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/knn}"
ATTACK_LIMIT="${ATTACK_LIMIT:-${PWWS_LIMIT:-0}}"
ATTACKS="${ATTACKS:-pwws deepwordbug}"
DATASETS="${DATASETS-sst2 agnews olid imdb}"
METHODS="${METHODS:-ce scl moco knn}"
read -r -a EXTRA <<< "${EXTRA:-}"  # extra finetune flags, e.g. EXTRA="--model tiny-random-en" for a smoke run

source recipes/lib.sh  # finished, metric, run_dir, go_on

finetune() {  # finetune OUT ARGS...: skip a finished run
  local out="$1"; shift
  finished "$out" || "$ADVKIT" finetune --quiet "$(go_on "$out")" --out "$out" "$@" "${EXTRA[@]}"
}

vote_alone() {  # vote_alone KNN_RUN: dev's lambda_inf choice is within one standard error (advkit.knn_bert.selection),
  # the run does not already ship the vote alone (lambda_inf 1) and its weights are kept: its vote is attacked alone
  [ "$(metric "$1" lambda_inf)" != 1.0 ] && [ "$("$PYTHON" -m advkit.knn_bert.selection "$1" 2>/dev/null || true)" = flagged ] &&
    { [ -f "$1/model/config.json" ] || { echo "table-knn: $1: lambda_inf is flagged but the run kept no weights, so its" \
      "vote is not attacked alone (train it again with --save-model)" >&2; false; }; }
}

# Each data set's runs sit in a folder per setting (rich, shots16) and, for robustness over seeds, per seed
# (advkit.layout): a method's run under its name (knn-pretrained: the control), an attacked run as <run>-<attack>.
for ds in $DATASETS; do
  rich="$(run_dir knn setting "$ROOT" dataset="$ds" setting=rich)"
  few="$(run_dir knn setting "$ROOT" dataset="$ds" setting=shots16)"
  for m in $METHODS; do
    save=()
    if [ "$ATTACK_LIMIT" -gt 0 ] && { [ "$m" = ce ] || [ "$m" = knn ]; }; then save=(--save-model); fi
    # rich-source: until dev accuracy has not improved for an epoch (at most the recipe's epochs)
    finetune "$rich/$m" --recipe "recipes/knn/$ds.toml" --method "$m" --patience 1 "${save[@]}"
    fewshot_limit=300; [ "$ds" = imdb ] && fewshot_limit=200  # 5 seeds x 4 methods evaluate this many
    finetune "$few/$m" --recipe "recipes/knn/$ds.toml" --method "$m" \
      --shots 16 --seeds 13,21,42,87,100 --epochs 10 --batch-size 16 --limit "$fewshot_limit"
  done
  # The control: the KNN vote over the un-fine-tuned encoder's pooled vectors (--epochs 0), what
  # pre-training alone gives (issue 16).
  finetune "$rich/knn-pretrained" --recipe "recipes/knn/$ds.toml" --method knn --epochs 0
  finetune "$few/knn-pretrained" --recipe "recipes/knn/$ds.toml" --method knn --epochs 0 \
    --shots 16 --seeds 13,21,42,87,100 --limit "$fewshot_limit"
  if [ "$ATTACK_LIMIT" -gt 0 ]; then
    n="$ATTACK_LIMIT"  # IMDb, 200 reviews on one core: PWWS 39-42 min a model, DeepWordBug 7-8 min
    vote=false; vote_alone "$rich/knn" && vote=true
    for attack in $ATTACKS; do
      # knn-cls: the KNN model's linear head alone (its model folder), on the same examples
      for m in ce knn knn-cls; do
        model="$rich/$m"; [ "$m" = knn-cls ] && model="$rich/knn/model"
        out="$rich/$m-$attack"
        [ -f "$rich/${m%-cls}/model/config.json" ] || continue  # a method not run (METHODS)
        finished "$out" examples "$n" || "$ADVKIT" evaluate --quiet --overwrite --model "$model" \
          --dataset "$ds" --split test --limit "$n" --attack "$attack" --max-length 128 --out "$out"
      done
      for goal in plain adaptive; do  # the vote alone, where dev's choice of lambda_inf was not firm
        out="$rich/knn-vote-$attack"; [ "$goal" = adaptive ] && out="$rich/knn-vote-adaptive-$attack"
        ! $vote || finished "$out" examples "$n" || "$ADVKIT" evaluate --quiet \
          --overwrite --model "$rich/knn" --lambda-inf 1 --dataset "$ds" --split test --limit "$n" \
          --attack "$attack" --goal "$goal" --max-length 128 --out "$out"
      done
      # The head's adversarial examples fed to the KNN model's combined predictor: does the vote resist
      # them, or could the attack not see the vote move? (Re-run when the head's attack was: it feeds one
      # example per success.)
      out="$rich/knn-transfer-$attack" head="$rich/knn-cls-$attack"
      ! finished "$head" || finished "$out" examples "$(metric "$head" successes)" || "$ADVKIT" evaluate \
        --quiet --overwrite --model "$rich/knn" --transfer-from "$head" --max-length 128 --out "$out"
    done
  fi
done
# Robustness over seeds (issue 30): on SST-2 (and AG News), CE, KNN-BERT and AT trained at each of SEEDS (weights kept),
# all attacked by PWWS on the same SEED_LIMIT test examples; KNN-BERT also by the adaptive PWWS (the
# search reads the vote's smooth twin, success is the shipped vote's: `--goal adaptive`) and by its head's
# adversarial examples. The table judges KNN-BERT under the strongest of the three, pooled over seeds.
# Where dev's lambda_inf choice was not firm (vote_alone), the KNN vote alone is attacked as well, by the plain
# and the adaptive goal (knn-vote-*, knn-vote-adaptive-*), beside the head alone (knn-cls-*), here and in the
# rich-source attacks above.
# SEEDS="" leaves this part out; a seed whose runs are finished is skipped. AG News takes part at AGNEWS_SEEDS
# (one seed: issue 30 asks it for the adaptive attack and AT, not for more seeds; "" leaves it out).
# AT, the adversarial-training baseline (`--method at`, A2T-style), is trained and attacked beside them:
# one clean epoch, then adversarial ones, at most AT_EPOCHS in all (an AT epoch costs several CE epochs:
# bench/out/at_epoch.json).
SEEDS="${SEEDS-1 2 3}"
AGNEWS_SEEDS="${AGNEWS_SEEDS-1}"
SEED_LIMIT="${SEED_LIMIT:-200}"
AT_EPOCHS="${AT_EPOCHS:-3}"
for pair in $(for s in $SEEDS; do echo "sst2:$s"; done) $(for s in $AGNEWS_SEEDS; do echo "agnews:$s"; done); do
  ds="${pair%:*}" s="${pair#*:}"
  here="$(run_dir knn seed "$ROOT" dataset="$ds" seed="$s")"
  for m in ce knn; do
    finetune "$here/$m" --recipe "recipes/knn/$ds.toml" --method "$m" --patience 1 --seed "$s" --save-model
  done
  finetune "$here/at" --recipe "recipes/knn/$ds.toml" --method at --epochs "$AT_EPOCHS" --patience 1 --seed "$s" \
    --save-model
  for run in ce:ce:plain knn:knn:plain knn-adaptive:knn:adaptive knn-cls:knn/model:plain at:at:plain; do
    IFS=: read -r name model goal <<< "$run"
    out="$here/$name-pwws"
    finished "$out" examples "$SEED_LIMIT" || "$ADVKIT" evaluate --quiet --overwrite --model "$here/$model" \
      --dataset "$ds" --split test --limit "$SEED_LIMIT" --attack pwws --goal "$goal" --max-length 128 --out "$out"
  done
  vote=false; vote_alone "$here/knn" && vote=true
  for goal in plain adaptive; do  # the vote alone (plain PWWS cannot see a step-valued vote move; adaptive can)
    out="$here/knn-vote-pwws"; [ "$goal" = adaptive ] && out="$here/knn-vote-adaptive-pwws"
    ! $vote || finished "$out" examples "$SEED_LIMIT" || "$ADVKIT" evaluate --quiet \
      --overwrite --model "$here/knn" --lambda-inf 1 --dataset "$ds" --split test --limit "$SEED_LIMIT" \
      --attack pwws --goal "$goal" --max-length 128 --out "$out"
  done
  out="$here/knn-transfer-pwws" head="$here/knn-cls-pwws"  # no transfer where the head's attack found nothing
  found="$(metric "$head" successes || true)"
  ! finished "$head" || [ "$found" = 0 ] || finished "$out" examples "$found" || "$ADVKIT" evaluate --quiet --overwrite \
    --model "$here/knn" --transfer-from "$head" --max-length 128 --out "$out"
done
"$PYTHON" -m advkit.finetune.table "$ROOT"
