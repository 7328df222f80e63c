"""What the label check in context (issue 34) removes from the Chinese table's successes, replayed on
their records (no attack is re-run).

    .venv/bin/python bench/label_check_context.py [RESULTS_ZH]

Each success of results/zh/attacks/<victim>/<data set>/<generator>/records.jsonl was found under the
check as it was (each swap judged on its unit alone). Its swaps are replayed in the order the search
applied them, each judged again by `label_check.LabelCheck` with the text around it, as the search now
asks (`word_around`: the jieba word that holds the unit, before and after). A success with a swap the
new check rejects could not have been found that way: the count is an upper bound on what the new
check removes (the search may find another path). Beside it, the independent judge (m3e-small, never
attacked): among the successes whose original it classifies right, the share whose adversarial text it
still gives the true label, for the successes the new check keeps and for those it removes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import REPO, record


def replay(r: dict, check) -> bool:
    """Whether every swap of a success passes the check in context, in the order it was applied."""
    current = list(r["units"])
    for change in r["changed"]:
        i = change["position"]
        left, right = "".join(current[:i]), "".join(current[i + 1 :])
        if not check(change["original"].strip(), change["substitute"].strip(), r["label"], left, right):
            return False
        current[i] = change["substitute"]
    return True


def share(rows: list[dict]) -> dict:
    judged = [r for r in rows if r.get("judge_before") == r["label"]]
    kept = sum(r["judge_after"] == r["label"] for r in judged)
    return {"n": len(judged), "judge_kept_label": round(kept / len(judged), 4) if judged else None}


def main() -> None:
    from advkit.attack_zh import label_check

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "results" / "zh"
    sections = {}
    for run in sorted((root / "attacks").glob("*/*/*")):
        victim, dataset, generator = run.parts[-3:]
        doc = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        if doc["config"].get("label_check") != "lexicon":
            continue
        check = label_check.load("lexicon", dataset)
        records = [json.loads(line) for line in (run / "records.jsonl").read_text(encoding="utf-8").splitlines()]
        successes = [r for r in records if r["status"] == "success"]
        kept = [replay(r, check) for r in successes]
        passed = [r for r, k in zip(successes, kept) if k]
        removed = [r for r, k in zip(successes, kept) if not k]
        sections[f"{victim}/{dataset}/{generator}"] = {
            "successes": len(successes), "kept_in_context": len(passed), "removed_in_context": len(removed),
            "attacked": sum(r["status"] != "skipped" for r in records),
            "judge_all": share(successes), "judge_kept": share(passed), "judge_removed": share(removed)}
    total = {k: sum(s[k] for s in sections.values()) for k in ("successes", "kept_in_context", "removed_in_context")}
    record("label_check_context", {
        "benchmark": "the label check in context replayed on the Chinese table's successes (results/zh, "
                     "label check lexicon): successes whose swaps it rejects, and the independent judge's "
                     "label-kept share among the successes it keeps and those it removes",
        "advkit": f"{total['kept_in_context']} of {total['successes']} successes pass the check in context",
        "baseline": f"{total['successes']} successes under the check on units alone",
        "ratio": round(total["kept_in_context"] / total["successes"], 4) if total["successes"] else None,
        "sections": sections,
        "goal": "report what the check in context removes, and whether the judge says the removed ones lost "
                "their label more often",
        "outcome": f"removes at most {total['removed_in_context']} of {total['successes']} successes",
    })


if __name__ == "__main__":
    main()
