#!/usr/bin/env bash
# make table-knn: the KNN-BERT table (issue 3) -> results/knn/table.md and the run directories behind it.
# minilm-l6 on sst2, agnews, olid, imdb; CE, SCL, MoCo, KNN; rich-source (subsampled, sizes in
# recipes/knn/*.toml and in the table) and 16-shot over 5 seeds. Finished runs are skipped, so an
# interrupted table continues where it stopped. PWWS_LIMIT=N adds accuracy under PWWS on N test
# examples for the rich-source CE and KNN models (0, the default, leaves the column empty).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ADVKIT="${ADVKIT:-.venv/bin/advkit}"
PYTHON="${PYTHON:-.venv/bin/python}"
ROOT="${ROOT:-results/knn}"
PWWS_LIMIT="${PWWS_LIMIT:-0}"
DATASETS="${DATASETS:-sst2 agnews olid imdb}"
read -r -a EXTRA <<< "${EXTRA:-}"  # extra finetune flags, e.g. EXTRA="--model tiny-random-en" for a smoke run

finetune() {  # finetune OUT ARGS...: skip a finished run
  local out="$1"; shift
  [ -f "$out/metrics.json" ] || "$ADVKIT" finetune --quiet --overwrite --out "$out" "$@" "${EXTRA[@]}"
}

for ds in $DATASETS; do
  for m in ce scl moco knn; do
    save=()
    if [ "$PWWS_LIMIT" -gt 0 ] && { [ "$m" = ce ] || [ "$m" = knn ]; }; then save=(--save-model); fi
    finetune "$ROOT/$ds/rich/$m" --recipe "recipes/knn/$ds.toml" --method "$m" "${save[@]}"
    fewshot_limit=300; [ "$ds" = imdb ] && fewshot_limit=200  # 5 seeds x 4 methods evaluate this many
    finetune "$ROOT/$ds/shots16/$m" --recipe "recipes/knn/$ds.toml" --method "$m" \
      --shots 16 --seeds 13,21,42,87,100 --epochs 10 --batch-size 16 --limit "$fewshot_limit"
  done
  # The control: the KNN vote over the un-fine-tuned encoder's pooled vectors (--epochs 0), what
  # pre-training alone gives (issue 16).
  finetune "$ROOT/$ds/rich/knn-pretrained" --recipe "recipes/knn/$ds.toml" --method knn --epochs 0
  finetune "$ROOT/$ds/shots16/knn-pretrained" --recipe "recipes/knn/$ds.toml" --method knn --epochs 0 \
    --shots 16 --seeds 13,21,42,87,100 --limit "$fewshot_limit"
  if [ "$PWWS_LIMIT" -gt 0 ]; then
    n="$PWWS_LIMIT"; [ "$ds" = imdb ] && n=$(( PWWS_LIMIT < 10 ? PWWS_LIMIT : 10 ))  # 230-word reviews: 1-2 min each
    for m in ce knn; do
      out="$ROOT/$ds/rich/$m-pwws"
      [ -f "$out/metrics.json" ] || "$ADVKIT" evaluate --quiet --overwrite --model "$ROOT/$ds/rich/$m" --dataset "$ds" \
        --split test --limit "$n" --attack pwws --max-length 128 --out "$out"
    done
  fi
done
"$PYTHON" -m advkit.finetune.table "$ROOT"
