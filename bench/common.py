"""What every benchmark records beside its figures: the machine, its load, the date.

Each benchmark writes bench/out/<name>.json through `record`; bench/report.py turns them into
bench/results.md. Runs are compared only within one file: ratios of two things measured side by
side in one run, on one machine.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
REPO = OUT.parents[1]


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from advkit.precision import cpu_features, resolve

    # The instruction sets decide what bf16 costs (emulated on AVX2/AVX512, native on AVX512-BF16/AMX):
    # a speed figure means nothing without them.
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "host": platform.node(), "cpu_features": cpu_features(), "precision_auto": resolve("auto", "cpu")}


def script() -> str:
    """The benchmark being run (its path in the repo), as the file that writes the JSON names it."""
    main = getattr(sys.modules.get("__main__"), "__file__", None) or sys.argv[0]
    path = Path(main).resolve()
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def record(name: str, result: dict) -> dict:
    """Write bench/out/NAME.json (result + the script that wrote it + machine + date + commit) and print it."""
    from advkit.results import git_commit  # the same commit (and "-dirty") as every run's provenance

    doc = {**result, "script": script(), "machine": machine(), "date": datetime.date.today().isoformat(),
           "git_commit": git_commit()}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return doc
