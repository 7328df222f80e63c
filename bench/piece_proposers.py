"""The two piece proposers side by side on held-out text (issue 18): the piece LM (`--substitutes
pieces`, advkit build-piece-lm) against the character MLM scoring pieces of the unit's length
through one mask per character (`--substitutes spans`, albert-tiny-zh), on the same units.

    .venv/bin/python bench/piece_proposers.py [N]

N held-out lines of the piece LM's own build (the lines its held-out accuracy was measured on,
never trained on; seed 0 picks them and, in each, one Chinese piece to mask): top-1 and top-5
accuracy of each proposer at that piece, over all pieces and over pieces of 2+ characters, and
seconds per proposal. The spans proposer knows the masked piece's length, the piece LM does not:
the table says so. The build's own metric (15 % of pieces masked at once) is quoted from its
metrics.json.
"""

from __future__ import annotations

import json
import random
import sys
import time

from common import record

from advkit import models
from advkit.attack_zh import substitutes
from advkit.attack_zh.piece_lm import split_corpus
from advkit.attack_zh.config import BuildPieceLmConfig
from advkit.hf import cjk_only


def main(n: int) -> None:
    import torch

    torch.set_num_threads(2)
    folder = models.resolve("piece-lm-zh")
    build = json.loads((folder / "metrics.json").read_text())
    cfg = BuildPieceLmConfig(**{k: v for k, v in build["config"].items() if k in BuildPieceLmConfig.__dataclass_fields__})
    heldout, _ = split_corpus(cfg)
    proposers = {"pieces": substitutes.load("pieces", str(folder)), "spans": substitutes.load("spans", str(folder))}
    rng = random.Random(0)
    cases = []
    for line in rng.sample(heldout, min(n, len(heldout))):
        units = proposers["pieces"].segment(line[:120])
        options = [i for i, u in enumerate(units) if cjk_only(u)]
        if options:
            cases.append((units, rng.choice(options)))
    result = {}
    for name, gen in proposers.items():
        hits1 = hits5 = multi = multi1 = 0
        started = time.perf_counter()
        for units, i in cases:
            top = gen.candidates(units, i, 5)
            hit1 = bool(top) and top[0] == units[i]
            hits1 += hit1
            hits5 += units[i] in top
            if len(units[i]) > 1:
                multi += 1
                multi1 += hit1
        seconds = time.perf_counter() - started
        result[name] = {"top1": round(hits1 / len(cases), 4), "top5": round(hits5 / len(cases), 4),
                        "top1_multi_char": round(multi1 / max(1, multi), 4), "multi_char_units": multi,
                        "seconds_per_proposal": round(seconds / len(cases), 4)}
    m = build["metrics"]
    p, s = result["pieces"], result["spans"]
    record("piece_proposers", {
        "benchmark": f"piece proposers on {len(cases)} held-out lines of the piece LM's corpus, one Chinese piece "
                     f"masked per line (seed 0): --substitutes spans (albert-tiny-zh, one mask per character, "
                     f"knows the length) vs pieces (the piece LM, {m['steps']} steps, built in "
                     f"{m['total_seconds'] / 60:.0f} min, its own held-out accuracy with 15 % masked "
                     f"{m['heldout_masked_piece_accuracy']:.3f})",
        "advkit": f"spans top-1 {s['top1']:.3f} / top-5 {s['top5']:.3f} (2+ chars {s['top1_multi_char']:.3f}), "
                  f"{s['seconds_per_proposal'] * 1000:.0f} ms",
        "baseline": f"pieces top-1 {p['top1']:.3f} / top-5 {p['top5']:.3f} (2+ chars {p['top1_multi_char']:.3f}), "
                    f"{p['seconds_per_proposal'] * 1000:.0f} ms",
        "ratio": round(s["top1"] / p["top1"], 2) if p["top1"] else None,
        "goal": "held-out masked-piece accuracy at least 0.30",
        "outcome": f"best top-1 {max(s['top1'], p['top1']):.3f}",
        "cases": len(cases), "proposers": result, "piece_lm_build": {k: v for k, v in m.items() if k != "fill_mask"},
    })


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
