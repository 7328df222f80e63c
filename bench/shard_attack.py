"""Throughput of an attack run on 2 processes (torchrun, one thread each) over 1 process (two threads),
side by side on the same examples (issue 15: goal at least 1.7x on this 2-core machine).

    .venv/bin/python bench/shard_attack.py [MODEL] [N]

Both runs are `advkit evaluate --attack pwws` on a fixed sample of N examples of SST-2 test (the fixed
sample) with the same seed; the records must come out identical, so the ratio compares equal work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, record

ATTACK = "pwws"  # ~100 queries an example: the attack, not the start-up, dominates


def timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env={**os.environ, **env}, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "runs/demo/ce"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    args = ["-m", "advkit.cli", "evaluate", "--model", model, "--dataset", "sst2", "--split", "test", "--limit",
            str(n), "--attack", ATTACK, "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp) / "one", Path(tmp) / "two"
        t1 = timed([sys.executable, *args, "--out", str(one)], {"OMP_NUM_THREADS": "2"})
        t2 = timed([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *args, "--out", str(two)],
                   {"OMP_NUM_THREADS": "1"})
        same = (one / "records.jsonl").read_bytes() == (two / "records.jsonl").read_bytes()
    ratio = t1 / t2
    record("shard_attack", {
        "benchmark": f"evaluate --attack {ATTACK} on {n} SST-2 test examples ({model}): 2 processes (torchrun, "
                     "1 thread each) vs 1 process (2 threads), wall time including start-up",
        "advkit": f"{t2:.1f} s on 2 processes", "baseline": f"{t1:.1f} s on 1 process",
        "ratio": round(ratio, 2), "records_identical": same,
        "goal": "throughput at least 1.7x", "outcome": f"{ratio:.2f}x ({'met' if ratio >= 1.7 else 'not met'})",
    })


if __name__ == "__main__":
    main()
