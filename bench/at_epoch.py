"""An adversarial-training epoch against a CE epoch (issue 30): the same seeded fine-tune of minilm-l6
on SST-2, `--method ce` and `--method at` (with `--adv-warmup 0`, so the one epoch is adversarial),
side by side in one run.

    .venv/bin/python bench/at_epoch.py [TRAIN_EXAMPLES] [THREADS]

Per method: training seconds (advkit's train_seconds: the steps, with AT's attack, no start-up, no
evaluation) and accuracy on all 872 SST-2 dev examples; for AT also what its attack did (examples
attacked, flipped, queries). The ratio is AT's epoch time over CE's: what the robustness baseline costs.
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


def finetune(out: Path, method: str, n: int, threads: int) -> dict:
    subprocess.run([sys.executable, "-m", "advkit.cli", "finetune", "--model", "minilm-l6", "--dataset", "sst2",
                    "--method", method, "--adv-warmup", "0", "--pooling", "mean", "--train-limit", str(n),
                    "--epochs", "1", "--batch-size", str(BATCH), "--max-length", str(LENGTH), "--seed", "1",
                    "--no-save-model", "--out", str(out), "--quiet"],
                   cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True)
    return json.loads((out / "metrics.json").read_text())["metrics"]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as tmp:
        runs = {m: finetune(Path(tmp) / m, m, n, threads) for m in ("ce", "at")}
    seconds = {m: r["train_seconds"] for m, r in runs.items()}
    accuracy = {m: r["eval_accuracy"] for m, r in runs.items()}
    attack = runs["at"]["adversarial_training"]
    done = attack["per_epoch"].get("1", {})
    ratio = seconds["at"] / seconds["ce"]
    record("at_epoch", {
        "benchmark": f"one training epoch of minilm-l6 on {n} SST-2 examples (batch {BATCH}, {LENGTH} tokens, mean "
                     f"pooling, seed 1, {threads} thread(s)): `--method at` (adversarial from the first step: ratio "
                     f"{attack['ratio']}, {attack['query_budget']} queries per attacked example) vs `--method ce`",
        "advkit": f"at {seconds['at']:.1f} s, dev {accuracy['at']:.4f}; attacked {done.get('attacked')}, flipped "
                  f"{done.get('succeeded')}, {done.get('queries')} queries",
        "baseline": f"ce {seconds['ce']:.1f} s, dev {accuracy['ce']:.4f}",
        "ratio": round(ratio, 2), "train_seconds": seconds, "dev_accuracy": accuracy, "attack": done,
        "goal": "report what an adversarial epoch costs against a CE epoch (AT time / CE time)",
        "outcome": f"an AT epoch takes {ratio:.2f}x a CE epoch",
    })


if __name__ == "__main__":
    main()
