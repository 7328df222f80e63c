# One prepared device call: bench/gpu_check.py, then advkit finetune ce and knn on CUDA
# with the settings of the zh table's albert-tiny-zh chnsenticorp victim (CPU: dev 0.764).
# The device machine has torch but not our pins, and reaches no network, so it is run from the
# repo root with a git-ignored .gpu/ carried along: .gpu/whl (wheels of transformers 4.57.6,
# tokenizers 0.22.2, huggingface-hub 0.36.2, typer 0.29.2 and pydantic 2.14.4 with its three
# needs, for CPython 3.12 manylinux), .gpu/models/albert-tiny-zh (a copy of the model folder)
# and .gpu/data/chnsenticorp (the data set). Results: bench/out/gpu_check.json, gpu_run.json.
# DEV=cpu N=64 runs the same on this machine, to check the script before spending device time.
DEV=${DEV:-cuda}; N=${N:-3000}
if [ -d .gpu/whl ] && [ "$DEV" = cuda ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export ADVKIT_HOME=/tmp/ah ADVKIT_DATA=$PWD/.gpu/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpuout}; mkdir -p $OUT
nvidia-smi -L 2>/dev/null
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
[ -n "$SKIP_CHECK" ] || { python3 bench/gpu_check.py --out $OUT/gpu_check.json; echo "gpu_check rc=$?"; }
for m in ce knn; do
  timeout 200 python3 -c 'import sys; from advkit.cli import main; sys.argv[0] = "advkit"; main()' \
    finetune --method $m --model .gpu/models/albert-tiny-zh --dataset chnsenticorp --train-limit $N \
    --limit 1000 --epochs 1 --max-length 64 --seed 1 --device $DEV --out /tmp/gpurun-$m --overwrite
  echo "finetune $m rc=$?"
  cp /tmp/gpurun-$m/metrics.json $OUT/finetune_$m.json
done
python3 - <<'PY'
import json, os
for m in ("ce", "knn"):
    p = os.path.join(os.environ.get("OUT", "/tmp/gpuout"), f"finetune_{m}.json")
    if os.path.exists(p):
        d = json.load(open(p))["metrics"]
        print(m, {k: d.get(k) for k in ("eval_accuracy", "accuracy_cls", "accuracy_knn", "accuracy_combined", "train_seconds", "train_steps")})
PY
