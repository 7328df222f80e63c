"""How firmly dev chose lambda_inf (issue 30): the one-standard-error flag that the KNN table prints
and that recipes/knn/table.sh reads to attack the KNN vote alone beside the combined predictor.

    python -m advkit.knn_bert.selection RUN_DIR   # prints "flagged" or "firm" (nothing without a selection)
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path


def selection_margin(metrics: dict) -> dict | None:
    """How firmly dev chose a finetune run's lambda_inf: its selection accuracy minus the best other grid
    value's (the margin), and one standard error of that accuracy on the n selection examples,
    sqrt(a(1 - a)/n). `flagged`: the margin is within one standard error (the one-SE rule), so another
    dev sample could have chosen otherwise. None for runs without a selection."""
    scores, chosen = metrics.get("selection_accuracy"), metrics.get("lambda_inf")
    n = metrics.get("selection_examples")
    if n is None:  # runs written before selection_examples: "dev (500 of 872 examples)", "held-out ... (692 examples"
        found = re.search(r"\((\d+)", metrics.get("lambda_inf_selected_on") or "")
        n = int(found.group(1)) if found else None
    if not scores or chosen is None or not n or len(scores) < 2:
        return None
    scores = {float(k): v for k, v in scores.items()}
    a = scores[float(chosen)]
    runner_up = max((lam for lam in scores if lam != float(chosen)), key=lambda lam: scores[lam])
    margin, se = a - scores[runner_up], math.sqrt(a * (1 - a) / n)
    return {"margin": margin, "se": se, "runner_up": runner_up, "n": n, "flagged": margin <= se}


def main(argv: list[str]) -> None:
    doc = json.loads((Path(argv[0]) / "metrics.json").read_text(encoding="utf-8"))
    found = selection_margin(doc["metrics"])
    if found is not None:
        print("flagged" if found["flagged"] else "firm")


if __name__ == "__main__":
    main(sys.argv[1:])
