#!/usr/bin/env bash
# Every command end to end on tiny random models and small slices (CI's smoke run).
set -euo pipefail
export HF_HUB_OFFLINE=1
advkit=${ADVKIT:-.venv/bin/advkit}
out=${1:-runs/smoke}
rm -rf "$out"
mkdir -p "$out"
q=--quiet
$advkit list models > "$out/models.txt"
$advkit list datasets > "$out/datasets.txt"
$advkit finetune $q --method ce --model tiny-random-en --dataset sst2 --train-limit 64 --limit 32 --epochs 1 --out "$out/ce"
$advkit finetune $q --method knn --model tiny-random-en --dataset sst2 --train-limit 64 --limit 32 --epochs 1 \
  --queue-size 256 --out "$out/knn"
$advkit evaluate $q --model "$out/knn" --dataset sst2 --split dev --limit 32 --out "$out/knn-eval"
$advkit evaluate $q --card --model "$out/ce" --dataset sst2 --limit 4 --attack-encoder tiny-random-en --out "$out/card"
$advkit poison $q --model tiny-random-en --dataset sst2 --train-limit 48 --limit 32 --epochs 1 --mode lwp \
  --victim-dataset sst2 --victim-epochs 1 --out "$out/lwp"
$advkit evaluate $q --model "$out/lwp/victim" --dataset sst2 --limit 32 --trigger "cf bb" --target 1 --scan 20 \
  --out "$out/lwp-eval"
$advkit build-piece-lm $q --tiny --corpus-limit 400 --out "$out/piece-lm"
$advkit finetune $q --model tiny-random-zh --dataset chnsenticorp --train-limit 64 --limit 16 --epochs 1 --out "$out/ce-zh"
$advkit attack-zh $q --model "$out/ce-zh" --dataset chnsenticorp --limit 4 --lm "$out/piece-lm" --top-k 8 \
  --fluency-lm tiny-random-zh --similarity-model tiny-random-zh --out "$out/attack-zh"
$advkit evaluate $q --model "$out/ce-zh" --dataset chnsenticorp --split dev --limit 4 --attack zh-glyph \
  --out "$out/eval-zh-glyph"
$advkit table "$out/ce" "$out/knn" --cols eval_accuracy > "$out/table.md"
$advkit report "$out"/card/*/ --out "$out/report" > /dev/null
echo "smoke: every command ran; outputs in $out"
