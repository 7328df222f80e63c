# One prepared device call: bench/gpu_check.py, then advkit finetune ce and knn on CUDA
# with the settings of the zh table's albert-tiny-zh chnsenticorp victim (CPU: dev 0.764).
# The device machine has torch but not our pins, and reaches no network, so it is run from the
# repo root with a git-ignored .gpu/ carried along: .gpu/whl (wheels of transformers 4.57.6,
# tokenizers 0.22.2, huggingface-hub 0.36.2, typer 0.29.2 and pydantic 2.14.4 with its three
# needs, for CPython 3.12 manylinux), .gpu/models/albert-tiny-zh (a copy of the model folder)
# and .gpu/data/chnsenticorp (the data set). Writes $OUT/gpu_check.json and $OUT/gpu_run.json, each naming
# the script that wrote it, the machine, the versions and the commit; they go to bench/out/ as they are.
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
# bench/out/gpu_run.json, written here from the two runs' metrics.json and the CPU reference run (the
# machine, the versions and the commit are read by code, never typed): copy $OUT/gpu_run.json to bench/out/.
OUT=$OUT DEV=$DEV N=$N python3 - <<'PY'
import datetime, json, os, platform, subprocess, sys
from pathlib import Path

out = Path(os.environ.get("OUT", "/tmp/gpuout"))
runs = {}
for m in ("ce", "knn"):
    p = out / f"finetune_{m}.json"
    if not p.is_file():
        sys.exit(f"gpu_run.sh: {p} missing (finetune {m} failed): no gpu_run.json written")
    runs[m] = json.loads(p.read_text())
ce, knn = runs["ce"]["metrics"], runs["knn"]["metrics"]
cfg = runs["ce"]["config"]
REF = "results/zh/victims/albert-tiny-zh/chnsenticorp"  # the zh table's victim, trained on the CPU in fp32
ref = json.loads(Path(REF, "metrics.json").read_text())
same = ("train_limit", "limit", "epochs", "batch_size", "lr", "max_length", "seed", "method", "dataset")
differs = [k for k in same if cfg.get(k) != ref["config"].get(k)]

import torch, transformers
cuda = os.environ.get("DEV", "cuda") == "cuda" and torch.cuda.is_available()
gpu = torch.cuda.get_device_name(0) if cuda else None
cpu = platform.processor() or ""
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           timeout=10)
    commit = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None
except (OSError, subprocess.SubprocessError):
    commit = None
where = f"CUDA ({gpu}, bf16 autocast)" if cuda else "the CPU (DEV=cpu: a check of this script, not the benchmark)"
doc = {
    "benchmark": f"advkit finetune on {where}: --method knn vs --method ce, {Path(cfg['model']).name}, "
                 f"{cfg['dataset']}, {ce['train_examples']} examples, {cfg['epochs']} epoch{'s' if cfg['epochs'] != 1 else ''}, batch "
                 f"{cfg['batch_size']}, max length {cfg['max_length']}, seed {cfg['seed']}, {ce['eval_split']} "
                 f"{ce['eval_examples']}; one call on the device machine",
    "advkit": f"knn {knn['train_seconds']} s training, {knn['eval_split']} {knn['eval_accuracy']} "
              f"(cls {knn['accuracy_cls']}, knn {knn['accuracy_knn']})",
    "baseline": f"ce {ce['train_seconds']} s training, {ce['eval_split']} {ce['eval_accuracy']}",
    "ratio": round(knn["train_seconds"] / ce["train_seconds"], 2),
    "goal": f"runs on CUDA and matches the CPU: the same ce run on the CPU (fp32) reached "
            f"{ref['metrics']['eval_split']} {ref['metrics']['eval_accuracy']} ({REF})",
    "outcome": (f"ce {ce['eval_accuracy']} on {'CUDA' if cuda else 'this CPU'} vs {ref['metrics']['eval_accuracy']} "
                "on CPU") if not differs else f"not comparable with {REF}: {', '.join(differs)} differ",
    "machine": {"gpu": gpu, "cpu": cpu, "cores": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()], "host": platform.node()},
    "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                 "transformers": transformers.__version__,
                 "carried_wheels": sorted(p.name for p in Path(".gpu/whl").glob("*.whl"))},
    "date": datetime.date.today().isoformat(),
    "git_commit": commit,
    "script": "bench/gpu_run.sh",
    "raw": runs,
}
(out / "gpu_run.json").write_text(json.dumps(doc, indent=2) + "\n")
for m, d in (("ce", ce), ("knn", knn)):
    print(m, {k: d.get(k) for k in ("eval_accuracy", "accuracy_cls", "accuracy_knn", "accuracy_combined",
                                    "train_seconds", "train_steps")})
print(out / "gpu_run.json", doc["outcome"])
PY
