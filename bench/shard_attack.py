"""Process scaling of an attack run: N processes (torchrun) at one thread each against one process at
one thread, side by side on the same examples (issue 33: goal at least 1.8x for N = 2). One process at
N threads is measured too, for reference: on a 2-core machine it already uses both cores, so it says
which layout is fastest, not how sharding scales.

    .venv/bin/python bench/shard_attack.py [MODEL] [N_EXAMPLES] [PROCESSES]

Every run is `advkit evaluate --attack pwws` on the same fixed sample of SST-2 test with the same seed;
the records must come out identical, so the ratios compare equal work.
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


def timed(cmd: list[str], threads: int) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True,
                   capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "runs/demo/ce"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    args = ["-m", "advkit.cli", "evaluate", "--model", model, "--dataset", "sst2", "--split", "test", "--limit",
            str(n), "--attack", ATTACK, "--quiet"]
    sharded = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), *args]
    with tempfile.TemporaryDirectory() as tmp:
        out = {name: Path(tmp) / name for name in ("one", "threads", "shards")}
        # untimed: the first run of a session fills caches (the fluency judge's counts, the OS's file cache)
        warm = [a if a != str(n) else "2" for a in args]
        timed([sys.executable, *warm, "--out", str(Path(tmp) / "warm-up")], 1)
        t_one = timed([sys.executable, *args, "--out", str(out["one"])], 1)
        t_shards = timed([*sharded, "--out", str(out["shards"])], 1)
        t_threads = timed([sys.executable, *args, "--out", str(out["threads"])], procs)
        records = {name: (path / "records.jsonl").read_bytes() for name, path in out.items()}
    # the contract: shards write the one-process records byte for byte (same threads per process);
    # more threads in one process may round probabilities differently, so that one is reported apart
    same = records["one"] == records["shards"]
    ratio = t_one / t_shards
    fastest = min((t_one, "1 process x 1 thread"), (t_threads, f"1 process x {procs} threads"),
                  (t_shards, f"{procs} processes x 1 thread"))[1]
    record("shard_attack", {
        "benchmark": f"evaluate --attack {ATTACK} on {n} SST-2 test examples ({model}): {procs} processes (torchrun, "
                     "1 thread each) vs 1 process at 1 thread, wall time including start-up",
        "advkit": f"{t_shards:.1f} s on {procs} processes x 1 thread", "baseline": f"{t_one:.1f} s on 1 process x 1 thread",
        "ratio": round(ratio, 2), "records_identical": same,
        "records_identical_at_more_threads": records["one"] == records["threads"],
        "reference": {f"1 process x {procs} threads": round(t_threads, 1),
                      "ratio_of_shards_to_threads": round(t_threads / t_shards, 2), "fastest": fastest},
        "goal": f"scaling at least {0.9 * procs:.1f}x for {procs} processes",
        "outcome": f"{ratio:.2f}x ({'met' if ratio >= 0.9 * procs else 'not met'}); fastest here: {fastest}",
    })


if __name__ == "__main__":
    main()
