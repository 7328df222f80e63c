"""`advkit attack-zh`: attack a slice of a Chinese data set, one record per example as it finishes.

Metrics (METHODS.md §3 and the shared definitions):
- accuracy_before / accuracy_after: over all attacked examples; after = examples still right.
- attack_success_rate: successes / examples the victim got right (skipped ones excluded).
- avg_queries: victim queries per attacked example (skipped ones excluded).
- perturbed_piece_ratio / perturbed_char_ratio: changed units / units, changed characters
  (edit distance) / characters, averaged over successful examples.
- fluency_ppl_before / after: pseudo-perplexity (Salazar et al., ACL 2020) under one fixed
  masked LM, mean over successful examples.
- similarity: cosine of m3e-small mean-pooled sentence vectors, mean over successes.
- rejected_per_example: candidates the label check dropped (never queried), mean over attacked
  examples; `label_check` names the check (lexicon, negation or none).
- seconds_per_example: search time (victim and generator), mean over all examples.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from advkit import data, models
from advkit.attack_zh import has_cjk, label_check, substitutes as subs
from advkit.attack_zh.search import greedy_attack
from advkit.config import AttackZhConfig, as_dict
from advkit.errors import UserError
from advkit.fluency import PseudoPerplexity
from advkit.progress import track
from advkit.results import RunDir, atomic_write

RECORDS = "records.jsonl"
# Settings that do not change the records: a run may resume with other values.
RESUME_FREE = ("device", "batch_size")


def load_examples(cfg: AttackZhConfig):
    split = data.load(cfg.dataset, cfg.split, root=cfg.data_root, text_column=cfg.text_column,
                      text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    if not split.labelled:
        raise UserError(f"{cfg.dataset}: split '{cfg.split}' is unlabelled; an attack needs labels (try --split dev)")
    examples = data.sample(split.examples, cfg.limit)  # the same fixed slice as `advkit evaluate`
    if split.language != "zh" or not any(has_cjk(e.text) for e in examples):
        raise UserError(f"attack-zh attacks Chinese text, but {cfg.dataset}/{cfg.split} has no Chinese characters")
    return split, examples


def read_records(path: Path) -> list[dict]:
    """Finished records; a last line cut off by an interruption is dropped (and rewritten away)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records, clean = [], True
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines) or text.endswith("\n"):  # only an unfinished last line is expected
                raise UserError(f"{path}:{n}: not a JSON record; the run is damaged, start again with --overwrite") \
                    from None
            clean = False  # half a line: that example is attacked again
    if not clean:
        atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return records


def check_resumable(out: RunDir, cfg: AttackZhConfig) -> None:
    marker = out.path / "run.json"
    if not marker.is_file():
        return
    try:
        before = json.loads(marker.read_text(encoding="utf-8")).get("config", {})
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{marker}: not valid JSON") from None
    now = as_dict(cfg)
    for key in now:
        if key not in RESUME_FREE and key in before and before[key] != now[key]:
            raise UserError(f"--resume: {out.path} was started with {key}={before[key]!r}, now {now[key]!r}; "
                            "resume with the same settings")


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(records: list[dict]) -> dict:
    """metrics.json's numbers from the records alone (see the module docstring for definitions)."""
    n = len(records)
    success = [r for r in records if r["status"] == "success"]
    failed = [r for r in records if r["status"] == "failed"]
    attacked = success + failed  # the victim was right before the attack
    return {
        "examples": n,
        "successes": len(success),
        "failures": len(failed),
        "skipped": n - len(attacked),
        "accuracy_before": len(attacked) / n if n else None,
        "accuracy_after": len(failed) / n if n else None,
        "attack_success_rate": len(success) / len(attacked) if attacked else None,
        "avg_queries": _mean(r["queries"] for r in attacked),
        "perturbed_piece_ratio": _mean(r["changed_units"] / r["n_units"] for r in success if r["n_units"]),
        "perturbed_char_ratio": _mean(r["changed_chars"] / r["chars"] for r in success if r["chars"]),
        "fluency_ppl_before": _mean(r.get("fluency_ppl_before") for r in success),
        "fluency_ppl_after": _mean(r.get("fluency_ppl_after") for r in success),
        "similarity": _mean(r.get("similarity") for r in success),
        "rejected_per_example": _mean(r.get("rejected") for r in attacked),
        "seconds_per_example": _mean(r["seconds"] for r in records),
    }


def _md(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_~[]<>|#" else c for c in text).replace("\n", " ")


def _highlight(units: list[str], shown: dict[int, str], mark: str) -> str:
    """The units in order, runs of changed ones (given by `shown`) wrapped in one `mark` pair."""
    out, i = [], 0
    while i < len(units):
        if i not in shown:
            out.append(_md(units[i]))
            i += 1
            continue
        run = []
        while i in shown:
            run.append(shown[i])
            i += 1
        out.append(mark + _md("".join(run)) + mark)
    return "".join(out)


def sample_markdown(records: list[dict], cfg: AttackZhConfig, limit: int = 20) -> str:
    """Successful examples with the changed units struck out (original) and bold (adversarial)."""
    lines = [f"# attack-zh sample: {cfg.substitutes} on {cfg.dataset}/{cfg.split}", "",
             f"Victim `{cfg.model}`. Original: ~~changed~~ units; adversarial: **substitutes**.", ""]
    shown = [r for r in records if r["status"] == "success"][:limit]
    for r in shown:
        changes = {c["position"]: c["substitute"] for c in r["changed"]}
        original = _highlight(r["units"], {i: r["units"][i] for i in changes}, "~~")
        adversarial = _highlight(r["units"], changes, "**")
        lines += [f"## example {r['index']} (label {r['label']} -> prediction {r['prediction_after']}, "
                  f"{r['changed_units']} unit(s), {r['queries']} queries)", "",
                  f"- original: {original}", f"- adversarial: {adversarial}", ""]
    if not shown:
        lines.append("No successful attack in this run.")
    return "\n".join(lines) + "\n"


def run(cfg: AttackZhConfig, out: RunDir, attack: str | None = None) -> dict:
    """`attack` names the run in metrics.json (evaluate's zh-<substitutes>); attack-zh leaves it out."""
    from advkit.finetune.predictor import load_predictor
    from advkit.seeds import seed_everything

    if cfg.model is None:
        raise UserError("--model is required: the victim classifier (a folder or finetune run directory)")
    split, examples = load_examples(cfg)
    if out.resume:
        check_resumable(out, cfg)
    seed_everything(cfg.seed)  # a victim without a trained head gets the same random head every time
    # a knn run is attacked through its combined KNN + linear predictor, like `evaluate --attack`
    victim = load_predictor(cfg.model, max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device)
    if victim.num_labels < len(split.labels):
        raise UserError(f"{cfg.dataset} has {len(split.labels)} labels but model '{cfg.model}' has "
                        f"{victim.num_labels}")
    generator = subs.load(cfg.substitutes, cfg.lm, cfg.device)
    check = label_check.load(cfg.label_check, cfg.dataset, root=cfg.data_root, text_column=cfg.text_column,
                             text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    path = out.path / RECORDS
    done = read_records(path) if out.resume else []
    out.create(as_dict(cfg))
    finished = {r["index"] for r in done}
    todo = [i for i in range(len(examples)) if i not in finished]
    fluency = similarity = None
    with open(path, "a", encoding="utf-8") as f:
        for i in track(todo, f"attack-zh ({cfg.substitutes})", total=len(todo)):
            e = examples[i]
            record = greedy_attack(e.text, e.label, victim, generator, text_b=e.text_b, top_k=cfg.top_k,
                                   max_perturb=cfg.max_perturb, max_queries=cfg.max_queries, check=check)
            record = {"index": i, "text": e.text, **({"text_b": e.text_b} if e.text_b is not None else {}), **record}
            if record["status"] == "success":  # quality scores of adversarial examples only
                fluency = fluency or PseudoPerplexity(cfg.fluency_lm, cfg.device, cfg.max_length)
                record["fluency_ppl_before"] = fluency(e.text)
                record["fluency_ppl_after"] = fluency(record["adversarial"])
                if cfg.similarity_model.lower() != "none":
                    similarity = similarity or models.SentenceEncoderModel(cfg.similarity_model, cfg.max_length,
                                                                           device=cfg.device)
                    record["similarity"] = float(similarity.similarity([e.text], [record["adversarial"]])[0])
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())  # a finished example survives an interruption
    records = sorted(read_records(path), key=lambda r: r["index"])
    metrics = {**summarize(records), "label_check": check.mode if check else "none", "dataset": cfg.dataset,
               "split": cfg.split, "substitutes": cfg.substitutes, "model": str(models.resolve(cfg.model))}
    if attack:  # evaluate's stable names, so cards and tables read English and Chinese attacks alike
        metrics.update(attack=attack, accuracy_under_attack=metrics["accuracy_after"])
    atomic_write(out.path / "sample.md", sample_markdown(records, cfg))
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
