"""Peak memory of `finetune --method knn` over `--method ce` (issue 7: at most 1.3).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/knn_memory.py

Each variant runs as its own `advkit finetune` process (same model, data, batch size, seed);
its peak resident set size is read from the kernel (getrusage of the finished child), so
the numbers include Python, torch and the tokenizer, as a user's machine would see them.
The momentum encoder, projection heads and the 32,000-key queue are what knn adds.
Writes bench/out/knn_memory.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import record

CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_kib(args: list[str]) -> int:
    """ru_maxrss (KiB on Linux) of one child run, measured in a fresh parent so children do not mix."""
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return int(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--train-limit", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    advkit = str(Path(sys.executable).parent / "advkit")
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ce", "knn"):
            peaks[method] = peak_kib([advkit, "finetune", "--model", args.model, "--method", method, "--dataset", "sst2",
                                      "--train-limit", str(args.train_limit), "--limit", "64", "--epochs", "1",
                                      "--batch-size", str(args.batch_size), "--max-length", "64", "--no-save-model",
                                      "--out", f"{tmp}/{method}", "--quiet"])
    record("knn_memory", {
        "benchmark": f"peak RSS of finetune --method knn vs --method ce ({args.model}, sst2, {args.train_limit} "
                     f"examples, batch {args.batch_size}, 1 epoch)",
        "peak_mib": {k: round(v / 1024, 1) for k, v in peaks.items()},
        "advkit": f"{peaks['knn'] / 1024:.0f} MiB", "baseline": f"{peaks['ce'] / 1024:.0f} MiB",
        "ratio": round(peaks["knn"] / peaks["ce"], 3), "goal": "at most 1.3"})


if __name__ == "__main__":
    main()
