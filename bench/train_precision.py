"""Training under bf16 autocast against fp32 on the CPU (issue 33): the same seeded CE fine-tune of
minilm-l6 on SST-2, once per precision, side by side in one run.

    .venv/bin/python bench/train_precision.py [TRAIN_EXAMPLES] [THREADS]

Per precision: training seconds (advkit's train_seconds: the steps alone, no start-up, no evaluation)
and dev accuracy on all 872 SST-2 dev examples; then bf16 - fp32 paired on the same dev examples
(McNemar) and whether the difference lies within the fp32 run's Wilson interval. `--precision auto`
takes bf16 for training only where this is worth it: the goal is at least 1.4x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, record

LENGTH, BATCH = 64, 32


def finetune(out: Path, precision: str, n: int, threads: int) -> dict:
    subprocess.run([sys.executable, "-m", "advkit.cli", "finetune", "--model", "minilm-l6", "--dataset", "sst2",
                    "--train-limit", str(n), "--epochs", "1", "--batch-size", str(BATCH), "--max-length", str(LENGTH),
                    "--seed", "1", "--precision", precision, "--no-save-model", "--out", str(out), "--quiet"],
                   cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True)
    doc = json.loads((out / "metrics.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line]
    return {"metrics": doc["metrics"], "precision": doc["config"]["precision"],
            "correct": [r["prediction"] == r["label"] for r in sorted(records, key=lambda r: r["index"])]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    from advkit.stats import mcnemar, wilson

    with tempfile.TemporaryDirectory() as tmp:
        runs = {p: finetune(Path(tmp) / p, p, n, threads) for p in ("fp32", "bf16")}
    seconds = {p: r["metrics"]["train_seconds"] for p, r in runs.items()}
    accuracy = {p: r["metrics"]["eval_accuracy"] for p, r in runs.items()}
    dev = len(runs["fp32"]["correct"])
    low, high = wilson(sum(runs["fp32"]["correct"]), dev)
    test = mcnemar(runs["fp32"]["correct"], runs["bf16"]["correct"])
    within = low <= accuracy["bf16"] <= high
    speed = seconds["fp32"] / seconds["bf16"]
    record("train_precision", {
        "benchmark": f"CE fine-tune of minilm-l6 on {n} SST-2 examples (1 epoch, batch {BATCH}, {LENGTH} tokens, "
                     f"seed 1, {threads} thread(s)): bf16 autocast vs fp32, training seconds and dev accuracy",
        "advkit": f"bf16 {seconds['bf16']:.1f} s, dev {accuracy['bf16']:.4f}",
        "baseline": f"fp32 {seconds['fp32']:.1f} s, dev {accuracy['fp32']:.4f}",
        "ratio": round(speed, 2), "train_seconds": seconds, "dev_accuracy": accuracy, "dev_examples": dev,
        "fp32_wilson_95": [round(low, 4), round(high, 4)],
        "paired": {"bf16_minus_fp32": round(accuracy["bf16"] - accuracy["fp32"], 4), **test},
        "goal": "bf16 at least 1.4x fp32 with dev accuracy inside the fp32 run's interval",
        "outcome": f"{speed:.2f}x, difference {'within' if within else 'outside'} the fp32 interval "
                   f"(McNemar p = {test['p_value']:.3g}): bf16 training "
                   f"{'pays' if speed >= 1.4 and within else 'does not pay'} on this CPU",
    })


if __name__ == "__main__":
    main()
