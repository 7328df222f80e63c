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
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "host": platform.node()}


def record(name: str, result: dict) -> dict:
    """Write bench/out/NAME.json (result + machine + date) and print it."""
    doc = {**result, "machine": machine(), "date": datetime.date.today().isoformat()}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    return doc
