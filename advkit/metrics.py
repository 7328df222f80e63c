"""Metric functions: pure functions of predictions, labels and per-example records.

Every command and table computes its numbers here, under one name per quantity
(METHODS.md, shared definitions). A rate with no denominator is None, never 0.
"""

from __future__ import annotations

from advkit.progress import track


def accuracy(predictions, labels) -> float:
    if len(labels) == 0:
        raise ValueError("accuracy of no examples")
    return sum(int(p == y) for p, y in zip(predictions, labels)) / len(labels)


def macro_f1(predictions, labels, num_labels: int) -> float:
    scores = []
    for c in range(num_labels):
        tp = sum(1 for p, y in zip(predictions, labels) if p == c and y == c)
        fp = sum(1 for p, y in zip(predictions, labels) if p == c and y != c)
        fn = sum(1 for p, y in zip(predictions, labels) if p != c and y == c)
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def clean_accuracy(victim, examples, chunk: int = 256) -> dict:
    """Accuracy of `victim` (anything with predict_proba and num_labels) on labelled examples,
    with one record per example."""
    probs = []
    chunks = range(0, len(examples), chunk)
    for i in track(chunks, "evaluating", total=len(chunks)):
        part = examples[i : i + chunk]
        texts_b = [e.text_b for e in part] if part[0].text_b is not None else None
        probs.extend(victim.predict_proba([e.text for e in part], texts_b).tolist())
    preds = [max(range(len(p)), key=p.__getitem__) for p in probs]
    labels = [e.label for e in examples]
    records = [{"index": i, "text": e.text, **({"text_b": e.text_b} if e.text_b else {}), "label": e.label,
                "prediction": p, "probs": [round(x, 6) for x in pr]}
               for i, (e, p, pr) in enumerate(zip(examples, preds, probs))]
    return {"accuracy": accuracy(preds, labels), "macro_f1": macro_f1(preds, labels, victim.num_labels),
            "examples": len(examples), "records": records}


def mean(values) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def attack_metrics(records: list[dict]) -> dict:
    """Adversarial metrics from per-example records (status: success | failed | skipped), for
    English attacks (TextAttack) and attack-zh alike.

    - accuracy_before / accuracy_under_attack: over all examples; under attack = failed attacks
      (the victim is still right).
    - attack_success_rate: successes / examples the victim got right (skipped ones excluded).
    - avg_queries: victim queries per attacked example.
    - perturbed_word_ratio (English) or perturbed_piece_ratio / perturbed_char_ratio (Chinese):
      changed words (of those inside the victim's window), units, characters (edit distance) over
      the text's, mean over successes; words_outside_window: words past the window, mean per example.
    - quality, English attacks and attack-zh alike: similarity (sentence-encoder cosine with the
      original) and fluency_ppl_before / after (perplexity under a judge that proposes nothing),
      means over the successes scored, counted in similarity_n and fluency_n (attacks.quality).
    - attack-zh also: rejected_per_example (label check), over attacked; seconds_per_example over
      all examples.
    - with an independent judge classifier (attack-zh --judge): label_preserved_share, the
      successes whose adversarial text the judge still gives the true label; and
      label_preserving_success_rate, those successes over the attacked examples.
    """
    n = len(records)
    success = [r for r in records if r["status"] == "success"]
    failed = [r for r in records if r["status"] == "failed"]
    attacked = success + failed
    m = {
        "examples": n,
        "successes": len(success),
        "failures": len(failed),
        "skipped": n - len(attacked),
        "accuracy_before": len(attacked) / n if n else None,
        "accuracy_under_attack": len(failed) / n if n else None,
        "attack_success_rate": len(success) / len(attacked) if attacked else None,
        "avg_queries": mean(r["queries"] for r in attacked),
    }
    if any("perturbed_word_ratio" in r for r in records):
        m["perturbed_word_ratio"] = mean(r["perturbed_word_ratio"] for r in success)
        m.update(quality(success))
    if any("words_outside_window" in r for r in records):  # English attacks: words the victim never sees
        m["words_outside_window"] = mean(r["words_outside_window"] for r in records)
    if any("n_units" in r for r in records):  # attack-zh's records
        m.update({
            "perturbed_piece_ratio": mean(r["changed_units"] / r["n_units"] for r in success if r["n_units"]),
            "perturbed_char_ratio": mean(r["changed_chars"] / r["chars"] for r in success if r["chars"]),
            **quality(success),
            "rejected_per_example": mean(r.get("rejected") for r in attacked),
            "seconds_per_example": mean(r["seconds"] for r in records),
        })
    if any("judge_after" in r for r in success):
        kept = sum(r["judge_after"] == r["label"] for r in success)
        m["label_preserved_share"] = kept / len(success)
        m["label_preserving_success_rate"] = kept / len(attacked)
        m["judge_accuracy_before"] = mean(float(r["judge_before"] == r["label"]) for r in success)
    return m


def quality(success: list[dict]) -> dict:
    """Means over successful records of their quality scores; n: the records each mean counts
    (a record without a score, e.g. no similarity model, is left out rather than counted as 0)."""
    scored = [r for r in success if r.get("fluency_ppl_before") is not None and r.get("fluency_ppl_after") is not None]
    return {"similarity": mean(r.get("similarity") for r in success),
            "similarity_n": sum(r.get("similarity") is not None for r in success),
            "fluency_ppl_before": mean(r["fluency_ppl_before"] for r in scored),
            "fluency_ppl_after": mean(r["fluency_ppl_after"] for r in scored),
            "fluency_n": len(scored)}


def perturbation(record: dict) -> float:
    """Share of the text a successful attack changed: words (English attacks), characters (Chinese)."""
    if "perturbed_word_ratio" in record:
        return record["perturbed_word_ratio"]
    return record["changed_chars"] / record["chars"] if record["chars"] else 0.0
