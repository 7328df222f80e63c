"""`advkit attack-zh`: attack a slice of a Chinese data set, one record per example as it finishes.

Metrics are `advkit.metrics.attack_metrics` of the records (METHODS.md §3 and the shared
definitions): fluency is the perplexity under one fixed judge that proposes no substitute (by
default the character trigram LM of half B of the Chinese training splits, `fluency.CharNgram`; or
pseudo-perplexity under a masked LM named by --fluency-lm), similarity the cosine of m3e-small
mean-pooled sentence vectors, `rejected_per_example` the candidates the label check dropped
(never queried); `label_check` names the check.
"""

from __future__ import annotations

import dataclasses

from advkit import data, distributed, models
from advkit.attack_zh import label_check, substitutes as subs
from advkit.attack_zh.search import greedy_attack
from advkit.attack_zh.config import AttackZhConfig
from advkit.config import as_dict
from advkit.errors import UserError
from advkit.metrics import attack_metrics
from advkit.fluency import NGRAM, perplexity_lm
from advkit.hf import has_cjk
from advkit.results import RESUME_FREE, RunDir, atomic_write
from advkit.victim import SentenceEncoderModel

RECORDS = "records.jsonl"


def load_examples(cfg: AttackZhConfig):
    split = data.load(cfg.dataset, cfg.split, root=cfg.data_root, text_column=cfg.text_column,
                      text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    if not split.labelled:
        raise UserError(f"{cfg.dataset}: split '{cfg.split}' is unlabelled; an attack needs labels (try --split dev)")
    examples = data.sample(split.examples, cfg.limit)  # the same fixed slice as `advkit evaluate`
    if cfg.attacked == "second":
        if not examples or any(e.text_b is None for e in examples):
            raise UserError(f"--attacked second: {cfg.dataset} is not a data set of pairs (no second sentence)")
        # the search edits `text` beside a fixed `text_b`: the second sentence takes the first's place
        # here, and SecondSentence gives the victim the pair in its own order
        examples = [dataclasses.replace(e, text=e.text_b, text_b=e.text) for e in examples]
    if split.language != "zh" or not any(has_cjk(e.text) for e in examples):
        raise UserError(f"attack-zh attacks Chinese text, but {cfg.dataset}/{cfg.split} has no Chinese characters")
    return split, examples


class SecondSentence:
    """A pair classifier asked about (fixed first sentence, edited second one) by a search that edits the
    first argument: the arguments are swapped back, and visibility is the second segment's."""

    def __init__(self, classifier):
        self.classifier = classifier

    def __getattr__(self, name):  # queries, num_labels, ...
        return getattr(self.classifier, name)

    def predict_proba(self, texts, texts_b=None):
        return self.classifier.predict_proba(texts_b, texts)

    def visible_chars(self, text: str, text_b: str | None = None) -> int:
        if not hasattr(self.classifier, "visible_chars"):
            return len(text)
        return self.classifier.visible_chars(text_b, text, segment=1)


def fluency_judge(cfg: AttackZhConfig):
    return perplexity_lm(cfg.fluency_lm, cfg.device, cfg.max_length, "--fluency-lm", cfg.data_root, "zh")


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


def main(cfg: AttackZhConfig, out, overwrite: bool = False, resume: bool = False) -> dict | None:
    """`advkit attack-zh`, alone or as one rank under torchrun: only rank 0 writes metrics and returns them."""
    return distributed.main("attack-zh", out, overwrite, resume, lambda run_dir: run(cfg, run_dir))


def run(cfg: AttackZhConfig, out: RunDir, attack: str | None = None) -> dict:
    """`attack` names the run in metrics.json (evaluate's zh-<substitutes>); attack-zh leaves it out."""
    from advkit.predictor import load_predictor
    from advkit.seeds import seed_everything

    if cfg.model is None:
        raise UserError("--model is required: the victim classifier (a folder or finetune run directory)")
    split, examples = load_examples(cfg)
    seed_everything(cfg.seed)  # a victim without a trained head gets the same random head every time
    # a knn run is attacked through its combined KNN + linear predictor, like `evaluate --attack`
    victim = load_predictor(cfg.model, max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device,
                            precision=cfg.precision)
    if cfg.attacked == "second":
        victim = SecondSentence(victim)
    if victim.num_labels < len(split.labels):
        raise UserError(f"{cfg.dataset} has {len(split.labels)} labels but model '{cfg.model}' has "
                        f"{victim.num_labels}")
    generator = subs.load(cfg.substitutes, cfg.lm, cfg.device)
    check = label_check.load(cfg.label_check, cfg.dataset, root=cfg.data_root, text_column=cfg.text_column,
                             text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    # loaded before --out is touched: a bad --judge fails at once
    judge = load_predictor(cfg.judge, max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device,
                           precision=cfg.precision) if cfg.judge else None
    if judge is not None and cfg.attacked == "second":
        judge = SecondSentence(judge)
    if judge is not None and judge.num_labels != victim.num_labels:
        raise UserError(f"--judge {cfg.judge} has {judge.num_labels} labels, the victim {victim.num_labels}")
    rank, world = distributed.setup(cfg.device)  # under torchrun each process attacks its share
    if rank == 0:
        out.create(as_dict(cfg), resume_free=RESUME_FREE)  # a resumed run must have the same settings
    scorers = {}  # the quality judges, loaded at the first success

    def one(i: int) -> dict:
        e = examples[i]
        record = greedy_attack(e.text, e.label, victim, generator, text_b=e.text_b, top_k=cfg.top_k,
                               max_perturb=cfg.max_perturb, max_queries=cfg.max_queries, check=check)
        record = {"index": i, "text": e.text, **({"text_b": e.text_b} if e.text_b is not None else {}), **record}
        if record["status"] == "success":  # quality scores of adversarial examples only
            if "fluency" not in scorers:
                scorers["fluency"] = fluency_judge(cfg)
            fluency = scorers["fluency"]
            record["fluency_ppl_before"] = fluency(e.text)
            record["fluency_ppl_after"] = fluency(record["adversarial"])
            if cfg.similarity_model.lower() != "none":
                if "similarity" not in scorers:
                    scorers["similarity"] = SentenceEncoderModel(cfg.similarity_model, cfg.max_length,
                                                                        device=cfg.device)
                record["similarity"] = float(scorers["similarity"].similarity([e.text], [record["adversarial"]])[0])
            if judge is not None:  # the independent classifier on the original and on the adversarial text
                pair = [e.text_b, e.text_b] if e.text_b is not None else None
                before, after = judge.predict_proba([e.text, record["adversarial"]], pair).argmax(-1).tolist()
                record.update(judge_before=before, judge_after=after)
        return record

    records = distributed.sharded_records(out, len(examples), one, f"attack-zh ({cfg.substitutes})", rank, world,
                                          RECORDS)
    if rank > 0:
        return {"command": "attack-zh", "metrics": {}}
    metrics = {**attack_metrics(records), "label_check": check.mode if check else "none", "fluency_judge": (
               "character trigram LM (Kneser-Ney) of half B of the Chinese training splits" if cfg.fluency_lm == NGRAM
               else f"pseudo-perplexity under {cfg.fluency_lm}"), "dataset": cfg.dataset,
               "split": cfg.split, "substitutes": cfg.substitutes, "model": str(models.resolve(cfg.model))}
    if attack:  # evaluate's name for the run, so cards and tables read English and Chinese attacks alike
        metrics["attack"] = attack
    atomic_write(out.path / "sample.md", sample_markdown(records, cfg))
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
