"""Greedy search over the units of a text, as in BERT-Attack (Li et al., EMNLP 2020).

1. Segment the text once into units (pieces, characters or words).
2. Importance of unit i: P(y|x) - P(y|x with unit i masked), all units in batched
   victim queries. The unit is replaced by the victim tokenizer's mask token
   (BERT-Attack's [MASK]); a victim without one sees the unit deleted.
3. Visit units by decreasing importance, skipping stop-words and units without a Chinese
   character (punctuation, digits, latin). Candidates: the generator's top-K, kept when
   they are all Chinese characters and differ from the unit, and, in a Simplified text
   (hf.reads_simplified), hold no Traditional-only character (whatever the generator).
4. One batched victim query per position for all its candidates; the first candidate (in
   the generator's order) that flips the label ends the search with success; otherwise
   the candidate that lowers P(y) most is kept, if it lowers it at all.
5. Give up when the next change would exceed `max_perturb` of the units, or when the
   query budget is spent.

Units past the victim's token window (truncated away at `max_length`) cannot change its
prediction: they are neither ranked nor tried, which spends no query on them (long
reviews run past 64 tokens). `check(unit, candidate, label, left, right)`, when given, drops candidates
that would change the true label rather than fool the victim (label_check.py); they are
never queried and are counted in the record's `rejected`.

The text is always `"".join(units)` after replacing list entries, never re-segmented,
so positions cannot drift (a defect of existing Chinese attack code, METHODS.md §3).
"""

from __future__ import annotations

import time
from itertools import accumulate

from advkit.hf import cjk_only, has_cjk, reads_simplified, traditional_only

# Chinese function words and pronouns: changing them rarely keeps the meaning.
STOP_WORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 着 过 吗 呢 吧 啊 呀 嘛 哦 之 其 这 那 这个 那个 这些 那些 "
    "我 你 他 她 它 我们 你们 他们 她们 它们 自己 有 没 没有 不 很 还 又 再 才 被 把 给 对 从 向 "
    "到 为 为了 因为 所以 但 但是 如果 虽然 可是 而且 并 并且 一个 一 个 些 么 什么 怎么 哪 谁 "
    "吗 啦 嗯 呵 哈 得 地 之后 以后 已经 还是 就是 只是 等 等等".split())


def attackable(unit: str) -> bool:
    core = unit.strip()
    return has_cjk(core) and core not in STOP_WORDS


def countable(unit: str) -> bool:
    """Units that count towards the perturbation budget and ratio (not spaces or punctuation)."""
    return any(c.isalnum() for c in unit)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: characters changed by one substitution (pieces may change length)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _replace(unit: str, core: str) -> str:
    """The candidate in the unit's place, keeping the unit's surrounding whitespace."""
    stripped = unit.strip()
    start = unit.index(stripped) if stripped else 0
    return unit[:start] + core + unit[start + len(stripped) :]


def visible(victim, text: str, text_b: str | None) -> int:
    """Leading characters of `text` the victim sees after truncation (all of them if it cannot tell)."""
    return victim.visible_chars(text, text_b) if hasattr(victim, "visible_chars") else len(text)


def greedy_attack(text: str, label: int, victim, substitutes, *, text_b: str | None = None, top_k: int = 48,
                  max_perturb: float = 0.4, max_queries: int | None = None, check=None) -> dict:
    """Attack one example; returns its record (without the quality scores)."""
    started, queries_at_start = time.time(), victim.queries

    def ask(texts: list[str]):
        return victim.predict_proba(texts, [text_b] * len(texts) if text_b is not None else None)

    def spent() -> int:
        return victim.queries - queries_at_start

    units = substitutes.segment(text)
    assert "".join(units) == text, "a segmenter lost text"
    current = list(units)
    p = ask([text])[0]
    before = int(p.argmax())
    record = {"label": label, "prediction_before": before, "prob_label_before": float(p[label]),
              "units": units, "n_units": sum(1 for u in units if countable(u)), "chars": len(text)}
    p_label, after, status, reason = float(p[label]), before, "failed", "exhausted"
    applied: list[int] = []  # positions in the order they were changed
    rejected = 0  # candidates the label check dropped
    seen = visible(victim, text, text_b)
    simplified = reads_simplified(text)  # then no candidate may bring a Traditional-only character
    starts = list(accumulate(map(len, units), initial=0))  # starts[i]: unit i's first character

    if before != label:
        status, reason = "skipped", "misclassified"
    else:
        positions = [i for i, u in enumerate(units) if attackable(u) and starts[i] < seen]
        max_changes = max(1, int(max_perturb * record["n_units"]))
        if not positions:
            reason = "nothing to attack"
        elif max_queries is not None and spent() + len(positions) > max_queries:
            reason = "query budget"
        else:
            mask = getattr(victim.tokenizer, "mask_token", None) or ""
            masked = ["".join(units[:i]) + mask + "".join(units[i + 1 :]) for i in positions]
            importance = p_label - ask(masked)[:, label]
            order = [positions[j] for j in sorted(range(len(positions)), key=lambda j: (-importance[j], j))]
            changes = 0
            for i in order:
                if changes >= max_changes:
                    reason = "perturb budget"
                    break
                core = units[i].strip()
                if len("".join(current[:i])) >= visible(victim, "".join(current), text_b):
                    continue  # earlier swaps lengthened the text and pushed this unit out of the window
                cands = list(dict.fromkeys(c for c in substitutes.candidates(current, i, top_k)
                                           if cjk_only(c) and c != core
                                           and not (simplified and traditional_only(c))))
                if check is not None:
                    left, right = "".join(current[:i]), "".join(current[i + 1 :])  # the word around it too
                    kept = [c for c in cands if check(core, c, label, left, right)]
                    rejected += len(cands) - len(kept)
                    cands = kept
                if not cands:
                    continue
                if max_queries is not None:
                    if spent() >= max_queries:
                        reason = "query budget"
                        break
                    cands = cands[: max_queries - spent()]
                texts = ["".join(current[:i]) + _replace(units[i], c) + "".join(current[i + 1 :]) for c in cands]
                probs = ask(texts)
                flipped = [j for j in range(len(cands)) if int(probs[j].argmax()) != label]
                if flipped:  # the first in the generator's ranking: the most natural flip
                    j = flipped[0]
                    current[i] = _replace(units[i], cands[j])
                    applied.append(i)
                    p_label, after, status, reason = float(probs[j][label]), int(probs[j].argmax()), "success", None
                    break
                j = int(probs[:, label].argmin())
                if probs[j][label] < p_label:  # a candidate that does not help is not a perturbation
                    current[i] = _replace(units[i], cands[j])
                    applied.append(i)
                    p_label = float(probs[j][label])
                    changes += 1
            else:
                if reason == "exhausted" and changes >= max_changes:
                    reason = "perturb budget"

    changed = [{"position": i, "original": units[i], "substitute": current[i]} for i in applied
               if units[i] != current[i]]
    record.update({
        "status": status, "reason": reason, "adversarial": "".join(current),
        "prediction_after": after, "prob_label_after": p_label, "queries": spent(), "changed": changed,
        "changed_units": len(changed), "rejected": rejected,
        "units_in_window": sum(1 for i, u in enumerate(units) if countable(u) and starts[i] < seen),
        "changed_chars": sum(edit_distance(c["original"], c["substitute"]) for c in changed),
        "seconds": round(time.time() - started, 4),
    })
    return record
