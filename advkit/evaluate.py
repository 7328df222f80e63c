"""Metric functions and evaluation runners (pure functions of predictions and labels)."""

from __future__ import annotations

from advkit import data, models
from advkit.config import EvaluateConfig, as_dict
from advkit.errors import UserError
from advkit.progress import track
from advkit.results import RunDir


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
    """Accuracy of `victim` on labelled examples, with one record per example."""
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


def default_split(dataset: str) -> str:
    """test when it is labelled, else dev (METHODS.md: shared definitions)."""
    spec = data.REGISTRY.get(dataset)
    if spec is None:
        return "test"
    test = spec.splits.get("test")
    return "test" if test is not None and test.label is not None else "dev"


def run(cfg: EvaluateConfig, out: RunDir | None) -> dict:
    split_name = cfg.split or default_split(cfg.dataset)
    split = data.load(cfg.dataset, split_name, root=cfg.data_root, text_column=cfg.text_column,
                      text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    if not split.labelled:
        raise UserError(f"{cfg.dataset}: split '{split_name}' is unlabelled; accuracy needs labels (try --split dev)")
    examples = data.sample(split.examples, cfg.limit)
    model, tokenizer, folder = models.load_classifier(cfg.model)
    n = model.config.num_labels
    if max(e.label for e in examples) >= n:
        raise UserError(f"{cfg.dataset} has {len(split.labels)} labels but model '{cfg.model}' has {n}")
    if out is not None:
        out.create(as_dict(cfg))
    victim = models.Victim(model, tokenizer, max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device)
    result = clean_accuracy(victim, examples)
    records = result.pop("records")
    metrics = {**result, "split": split_name, "dataset": cfg.dataset, "model": str(folder)}
    if out is None:
        return {"command": "evaluate", "metrics": metrics}
    out.write_records(records)
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
