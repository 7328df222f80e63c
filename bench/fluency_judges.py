"""Do two fluency judges that share nothing agree (issue 34)? The Chinese table's judge is a character
trigram LM counted on Chinese training text, the corpus the piece LM is built from too; the second is
roformer-zh's masked-LM pseudo-perplexity (another model family, another corpus). Replayed on the
table's records (no attack is re-run).

    .venv/bin/python bench/fluency_judges.py [RESULTS_ZH] [PER_GENERATOR]

Per section (victim x data set) and generator, a fixed sample of PER_GENERATOR successes (default 20,
seed 0). For each, the fluency cost log(ppl after / ppl before) under the trigram judge (as the run
recorded it) and under roformer-zh. Reported per section: each judge's mean cost per generator, whether
the two judges give pieces − chars the same sign, and Spearman's rank correlation of the two judges'
costs over the sampled successes (all generators) and over the generators' means.
"""

from __future__ import annotations

import functools
import json
import math
import random
import sys
import time
from pathlib import Path

from common import REPO, record

GENERATORS = ("pieces", "spans", "chars", "words", "glyph", "homophone")


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties given their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho: Pearson's correlation of the ranks (None below three pairs or for a constant side)."""
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va, vb = sum((x - ma) ** 2 for x in ra), sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va and vb else None


def main() -> None:
    from advkit import layout
    from advkit.fluency import PseudoPerplexity

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "results" / "zh"
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    judge = functools.lru_cache(maxsize=None)(PseudoPerplexity("roformer-zh", "cpu", 128, flag="roformer-zh"))
    # (cached: an original text is sampled again by each generator that succeeded on it)
    began, sections = time.time(), {}
    for section in layout.runs(root, "zh", "attacked"):
        where = layout.fields(root, "zh", "attacked", section)
        costs: dict[str, list[tuple[float, float]]] = {}
        for g in GENERATORS:
            run = layout.run(root, "zh", "attack", generator=g, check="lexicon", **where)
            if not (run / "records.jsonl").is_file():
                continue
            rows = [json.loads(line) for line in (run / "records.jsonl").read_text(encoding="utf-8").splitlines()]
            rows = [r for r in rows if r["status"] == "success" and r.get("fluency_ppl_before")]
            sample = random.Random(0).sample(rows, min(per, len(rows)))
            pairs = []
            for r in sample:
                before, after = judge(r["text"]), judge(r["adversarial"])
                if before and after:
                    pairs.append((math.log(r["fluency_ppl_after"] / r["fluency_ppl_before"]), math.log(after / before)))
            costs[g] = pairs
        means = {g: [sum(p[k] for p in v) / len(v) for k in (0, 1)] for g, v in costs.items() if v}
        pooled = [p for v in costs.values() for p in v]
        entry = {"n_per_generator": {g: len(v) for g, v in costs.items()},
                 "mean_log_ppl_ratio": {g: {"trigram": round(m[0], 4), "roformer": round(m[1], 4)}
                                        for g, m in means.items()},
                 "spearman_over_successes": spearman([p[0] for p in pooled], [p[1] for p in pooled]),
                 "spearman_over_generators": spearman([m[0] for m in means.values()], [m[1] for m in means.values()])}
        if "pieces" in means and "chars" in means:
            d = [means["pieces"][k] - means["chars"][k] for k in (0, 1)]
            entry["pieces_minus_chars"] = {"trigram": round(d[0], 4), "roformer": round(d[1], 4),
                                           "same_sign": (d[0] > 0) == (d[1] > 0)}
        sections[f"{where['model']} on {where['dataset']}"] = entry
    signs = [e["pieces_minus_chars"]["same_sign"] for e in sections.values() if "pieces_minus_chars" in e]
    rhos = {s: e["spearman_over_successes"] for s, e in sections.items()}
    record("fluency_judges", {
        "benchmark": "two fluency judges on the Chinese table's successes: log(ppl after / before) under the "
                     f"character trigram judge (recorded by each run) and roformer-zh's pseudo-perplexity, {per} "
                     "successes a generator and section (seed 0)",
        "advkit": "Spearman over successes: " + ", ".join(f"{s} {r:.2f}" if r is not None else f"{s} –"
                                                          for s, r in rhos.items()),
        "baseline": "the trigram judge alone (the table's)",
        "ratio": f"pieces − chars same sign in {sum(signs)} of {len(signs)} sections",
        "per_generator": per, "seed": 0, "seconds": round(time.time() - began, 1), "sections": sections})


if __name__ == "__main__":
    main()
