"""English attacks on texts longer than the victim's window: with the window constraint (words past the
victim's max_length are neither ranked nor perturbed) against without it, side by side on the same
examples, alternating per example so that both see the same machine load (issue 14).

    .venv/bin/python bench/window_attack.py [MODEL] [N] [ATTACK]

IMDb test reviews (a fixed sample, seed 0), victim max length 128, one thread. Per example: queries,
seconds, status; the records of both runs must agree on every example the window leaves unchanged.
"""

from __future__ import annotations

import os
import sys
import time

from common import record


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "runs/demo/ce"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    name = sys.argv[3] if len(sys.argv) > 3 else "deepwordbug"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    from advkit import data
    from advkit.attacks import recipes
    from advkit.predictor import load_predictor
    from advkit.seeds import seed_everything

    victim = load_predictor(model, max_length=128, batch_size=32)
    examples = data.sample(data.load("imdb", "test").examples, n)
    windowed, _ = recipes.build(name, victim)
    from textattack.constraints import PreTransformationConstraint

    class EveryWord(PreTransformationConstraint):  # the attack as it was: every word ranked and tried
        def _get_modifiable_indices(self, current_text):
            return set(range(len(current_text.words)))

    original = recipes.within_window
    recipes.within_window = lambda predictor: EveryWord()
    try:
        unlimited, _ = recipes.build(name, victim)
    finally:
        recipes.within_window = original
    rows = {"before": [], "after": []}
    for i, example in enumerate(examples):
        for label, attack in (("before", unlimited), ("after", windowed)):
            seed_everything(1 + i)
            started = time.perf_counter()
            r = recipes.attack_one(attack, example, i)
            rows[label].append({"status": r["status"], "queries": r["queries"], "words": r["words"],
                                "words_outside_window": r["words_outside_window"],
                                "seconds": round(time.perf_counter() - started, 1)})

    def summary(rs):
        attacked = [r for r in rs if r["status"] != "skipped"]
        return {"queries_per_example": sum(r["queries"] for r in attacked) / max(1, len(attacked)),
                "seconds_per_example": sum(r["seconds"] for r in rs) / len(rs),
                "successes": sum(r["status"] == "success" for r in rs), "attacked": len(attacked)}

    before, after = summary(rows["before"]), summary(rows["after"])
    ratio = after["seconds_per_example"] / before["seconds_per_example"]
    record("window_attack", {
        "benchmark": f"{name} on {n} IMDb test reviews ({model}, max length 128, 1 thread): with the window "
                     "constraint vs without (every word ranked and perturbed)",
        "advkit": f"{after['seconds_per_example']:.1f} s/example, {after['queries_per_example']:.0f} queries, "
                  f"{after['successes']}/{after['attacked']} successes",
        "baseline": f"{before['seconds_per_example']:.1f} s/example, {before['queries_per_example']:.0f} queries, "
                    f"{before['successes']}/{before['attacked']} successes",
        "ratio": round(ratio, 3), "per_example": rows,
        "words_outside_window_mean": sum(r["words_outside_window"] for r in rows["after"]) / n,
        "goal": "words the victim never sees cost no queries", "outcome": f"time ratio {ratio:.2f}",
    })


if __name__ == "__main__":
    main()
