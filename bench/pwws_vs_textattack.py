"""PWWS through advkit and through TextAttack's own command line, side by side.

Same local model, same 100 SST-2 test examples, same recipe (PWWS, Ren et al. 2019),
same model batch size. Reports wall time of each command (imports included), the
ratio advkit / TextAttack, and the success / failed / skipped counts of both.

Usage: .venv/bin/python bench/pwws_vs_textattack.py MODEL_DIR [N]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import record

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def main() -> None:
    model = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    folder = model / "model" if (model / "model").is_dir() else model
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NLTK_DATA": str(REPO / ".advkit" / "nltk_data"),
           "BENCH_EXAMPLES": str(n), "PYTHONPATH": str(REPO)}
    out = Path(tempfile.mkdtemp()) / "pwws"
    ours_s, _ = timed([str(BIN / "advkit"), "evaluate", "--model", str(folder), "--dataset", "sst2", "--split", "test",
                       "--limit", str(n), "--attack", "pwws", "--batch-size", "32", "--out", str(out), "--quiet"], env)
    ours = json.loads((out / "metrics.json").read_text())["metrics"]
    theirs_s, log = timed([str(BIN / "textattack"), "attack", "--recipe", "pwws", "--model-from-huggingface", str(folder),
                           "--dataset-from-file", str(REPO / "bench" / "textattack_slice.py"), "--num-examples", str(n),
                           "--model-batch-size", "32", "--disable-stdout"], env)

    def count(label: str) -> int:
        match = re.search(rf"Number of {label} attacks:\s*\|\s*(\d+)", log)
        return int(match.group(1)) if match else -1

    theirs = {"successes": count("successful"), "failed": count("failed"), "skipped": count("skipped")}
    mine = {"successes": ours["successes"], "failed": ours["examples"] - ours["successes"] - ours["skipped"],
            "skipped": ours["skipped"]}
    same = mine == theirs
    record("pwws_vs_textattack", {
        "benchmark": f"PWWS on {n} SST-2 test examples (fixed sample, seed 0), model batch 32: advkit evaluate "
                     "--attack pwws vs textattack attack --recipe pwws", "examples": n,
        "advkit_seconds": round(ours_s, 1), "textattack_seconds": round(theirs_s, 1), "advkit": f"{ours_s:.1f} s",
        "baseline": f"{theirs_s:.1f} s", "ratio": round(ours_s / theirs_s, 3), "goal": "at most 1.0, same counts",
        "advkit_counts": mine, "textattack_counts": theirs, "identical_counts": same, "model": str(folder),
        "outcome": ("identical counts: " if same else f"counts differ (TextAttack {theirs}): ")
                   + f"{mine['successes']} successes, {mine['failed']} failed, {mine['skipped']} skipped"})


if __name__ == "__main__":
    main()
