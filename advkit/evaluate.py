"""`advkit evaluate`: clean accuracy, robustness under an attack, and backdoor checks of any model.

`run` dispatches: a Chinese attack to attack-zh's code (`run_zh`); otherwise the inputs (`inputs`: a
sample of a split, or another run's adversarial texts), the predictor (`load`: what a model reference
predicts with, advkit.predictor), then the clean part (`clean_part`: accuracy, with advkit.poison.checks'
backdoor checks and detectors) or an English attack (`attack_part`). The numbers are advkit.metrics'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from advkit import data, distributed, gate, models
from advkit.attack_zh import ZH_ATTACKS
from advkit.attack_zh.config import LABEL_CHECKS
from advkit.attacks import ATTACKS, GOALS
from advkit.config import (QUERY_PRECISION, DataOptions, as_dict, check_precision, choice, cosine, fraction, opt,
                           positive, precision_option)
from advkit.errors import UserError
from advkit.hf import MAX_LENGTH
from advkit.poison import DEFENCES, checks
from advkit.metrics import attack_metrics, clean_accuracy
from advkit.results import RESUME_FREE, RunDir
from advkit.seeds import seed_everything


@dataclass
class EvaluateConfig(DataOptions):
    COMMAND: ClassVar[str] = "evaluate"

    model: str = opt("minilm-l6", "Alias, model folder, or finetune run directory.")
    split: str | None = opt(None, "Split evaluated (unset: test when it is labelled, else dev).")
    limit: int | None = opt(None, "Evaluate a fixed sample of this many examples (unset: all).")
    batch_size: int = opt(64, "Texts per forward pass.")
    max_length: int = opt(MAX_LENGTH, "Tokens per text.")
    seed: int = opt(1, "Seed of the attack's random choices (per example: seed + index).")
    device: str = opt("cpu", "cpu or cuda.")
    attack: str | None = opt(None, "pwws, deepwordbug, textfooler, bert-attack, bae (English); zh-pieces, "
                                   "zh-spans, zh-chars, zh-words, zh-glyph, zh-homophone (Chinese, attack-zh's "
                                   "search).")
    attack_lm: str | None = opt(None, "Local masked LM for bert-attack / bae; the piece LM for zh-pieces and "
                                      "zh-spans.")
    attack_encoder: str = opt("minilm-l6", "Local sentence encoder in place of USE; also the one that scores each "
                                           "English adversarial example's similarity to its original.")
    min_similarity: float | None = opt(None, "English attacks: keep every candidate's --attack-encoder cosine with "
                                             "the original at or above this (-1 to 1), a constraint the search "
                                             "respects.")
    query_budget: int | None = opt(None, "Victim queries per example before giving up (unset: the recipe's).")
    goal: str = opt("plain", "English attacks on a knn run: plain (the search reads the predictor's probabilities) "
                             "or adaptive (it reads a smooth score of the same decision: each class's k nearest "
                             "keys, softmax at knn_tau, mixed with the head by lambda_inf; success is still the "
                             "shipped vote's).")
    lambda_inf: float | None = opt(None, "knn runs: mix the vote by this instead of the run's lambda_inf (1: the "
                                         "KNN vote alone, 0: the linear head alone), e.g. to attack each part.")
    precision: str = precision_option(QUERY_PRECISION)
    label_check: str = opt("lexicon", "Chinese attacks: lexicon | negation | none (see attack-zh).")
    card: bool = opt(False, "Report card: clean accuracy, the language's attacks, backdoor checks.", "--card")
    trigger: str | None = opt(None, 'Backdoor check: sub-triggers separated by spaces, e.g. "cf bb" (with --target).')
    target: int | None = opt(None, "Backdoor check: the target label id.")
    scan: int = opt(0, "Vocabulary-scan defence over this many sampled whole-word tokens (0: off; -1: every "
                       "whole-word token of the vocabulary; a card's backdoor: 200). Shards under torchrun.")
    transfer_from: str | None = opt(None, "Evaluate on the adversarial examples an earlier `evaluate --attack` "
                                          "run found (its successes; --dataset, --split and --limit are then "
                                          "unused): the accuracy a transfer attack leaves.")
    onion_lm: str | None = opt(None, "ONION defence: filter inputs by this LM's perplexity before the model sees "
                                     "them (with --defence onion: detect with it instead): word-trigram (English: "
                                     "the word trigram judge, a causal LM as ONION's GPT-2) or a local masked LM "
                                     "(its pseudo-perplexity).")
    onion_threshold: float = opt(0.0, "ONION: remove a word when dropping it lowers the perplexity by more "
                                      "than this.")
    defence: str | None = opt(None, "Backdoor detector scored on clean and triggered inputs (with --trigger): strip, "
                                    "rap, or onion (its LM: --onion-lm); threshold at 5 % false rejections of dev.")
    require: list[str] | None = opt(None, 'Robustness gate (repeatable): "METRIC OP VALUE" with OP one of >= > <= < '
                                          '==, on this run\'s metrics.json names (a card: clean_accuracy or '
                                          'PART.METRIC, e.g. pwws.accuracy_under_attack); exit 1 if one is missed.')

    def check(self) -> None:
        positive(self, "batch_size", "max_length", "limit", "query_budget")
        if self.lambda_inf is not None:
            fraction(self, "lambda_inf")
        choice("label-check", self.label_check, LABEL_CHECKS)
        check_precision(self)
        if self.attack is not None:  # before any model loads
            choice("attack", self.attack, ATTACKS + ZH_ATTACKS)
        choice("goal", self.goal, GOALS)
        if self.goal != "plain" and self.attack not in ATTACKS:
            raise UserError(f"--goal {self.goal} belongs to an English attack (--attack {', '.join(ATTACKS)})")
        if self.scan < -1:
            raise UserError(f"--scan must be -1 (every token), 0 (off) or a count, got {self.scan}")
        if self.card and self.attack:
            raise UserError("--card runs every applicable attack; leave out --attack")
        if self.onion_lm and ((self.attack or "").startswith("zh-") or self.card):
            raise UserError("--onion-lm filters the inputs of clean and backdoor checks and English attacks; "
                            "it does not apply to --attack zh-* or --card")
        if self.defence is not None:
            choice("defence", self.defence, DEFENCES)
            if self.trigger is None or self.attack or self.card or self.transfer_from:
                raise UserError(f"--defence {self.defence} is scored on triggered inputs: it needs --trigger and "
                                "--target, without --attack, --card or --transfer-from")
            if (self.defence == "onion") != bool(self.onion_lm):
                raise UserError("--defence onion scores with the LM of --onion-lm (and then filters nothing); "
                                "give both, or neither for --defence strip|rap")
        if self.transfer_from and (self.attack or self.trigger or self.scan or self.card):
            raise UserError("--transfer-from evaluates a fixed set of adversarial texts; it does not combine with "
                            "--attack, --trigger, --scan or --card")
        if (self.trigger is None) != (self.target is None) and not self.card:
            raise UserError("--trigger and --target go together")
        cosine(self, "min_similarity")
        if self.min_similarity is not None:
            if not (self.card or self.attack in ATTACKS):
                raise UserError("--min-similarity constrains an English attack: give --attack pwws|deepwordbug|"
                                "textfooler|bert-attack|bae or --card")
        if self.require:
            from advkit import gate

            for requirement in self.require:
                gate.parse(requirement)  # a malformed one stops here, before anything runs


def transferred(run: str) -> tuple[list, list[int]]:
    """The adversarial examples an attack run found (its records with status success), in its order,
    with their indices there, so that the transfer and the attack can be paired example by example."""
    from pathlib import Path

    from advkit.results import read_records

    path = Path(run) / "records.jsonl"
    if not path.is_file():
        raise UserError(f"--transfer-from {run}: no records.jsonl (not an `evaluate --attack` run directory)")
    records = read_records(path)[0]
    if records and "adversarial" not in records[0]:
        raise UserError(f"--transfer-from {run}: its records hold no adversarial texts (not an attack run)")
    found = [r for r in records if r.get("status") == "success"]
    if not found:
        raise UserError(f"--transfer-from {run}: the attack succeeded on no example; there is nothing to transfer")
    return [data.Example(r["adversarial"], r["label"], r.get("text_b")) for r in found], [r["index"] for r in found]


def zh_config(cfg: EvaluateConfig, split_name: str):
    """attack-zh's settings for `evaluate --attack zh-<substitutes>`: the same search, records and metrics."""
    import dataclasses

    from advkit.attack_zh.config import AttackZhConfig


    data_options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(DataOptions)}
    zcfg = AttackZhConfig(**data_options, model=cfg.model, split=split_name, limit=cfg.limit, lm=cfg.attack_lm,
                          substitutes=cfg.attack.removeprefix("zh-"), batch_size=cfg.batch_size,
                          max_length=cfg.max_length, seed=cfg.seed, device=cfg.device, label_check=cfg.label_check,
                          precision=cfg.precision, **({"max_queries": cfg.query_budget} if cfg.query_budget else {}))
    zcfg.check()
    return zcfg


def run_zh(cfg: EvaluateConfig, out: RunDir | None, split_name: str) -> dict:
    """A Chinese attack through attack-zh's code; without --out its records go to a temporary folder."""
    import tempfile

    from advkit.attack_zh import run as zh

    zcfg = zh_config(cfg, split_name)
    if out is not None:
        return zh.run(zcfg, out, attack=cfg.attack)
    with tempfile.TemporaryDirectory(prefix="advkit-") as tmp:
        return zh.run(zcfg, RunDir(tmp, "evaluate", overwrite=True), attack=cfg.attack)


def main(cfg: EvaluateConfig, out, overwrite: bool = False, resume: bool = False) -> dict | None:
    """`advkit evaluate`, alone or as one rank under torchrun (attacks are sharded across ranks; only
    rank 0 writes metrics and returns them)."""
    if distributed.world()[1] > 1 and not (cfg.attack or cfg.scan):
        raise UserError("under torchrun, evaluate shards an attack (--attack), a vocabulary scan (--scan) or a "
                        "card (--card); run clean accuracy alone as one process")
    if out is not None:
        return distributed.main("evaluate", out, overwrite, resume, lambda run_dir: run(cfg, run_dir))
    if resume:
        raise UserError("--resume needs --out (the run directory to continue)")
    if distributed.world()[1] > 1:
        raise UserError("under torchrun an attack needs --out: each process writes its records there")
    return run(cfg, None)


def run(cfg: EvaluateConfig, out: RunDir | None) -> dict:
    """The dispatcher: a Chinese attack goes to attack-zh's code; otherwise the inputs, the predictor,
    then the clean part (accuracy, with the backdoor checks of advkit.poison.checks) or an attack part.
    Under torchrun an attack or a scan is sharded; clean accuracy (cheap) runs in every process and
    rank 0 writes it (the card's clean run)."""
    split_name = cfg.split or data.default_split(cfg.dataset)
    if cfg.require and cfg.attack and cfg.attack not in ZH_ATTACKS:  # the names known before any model loads
        from advkit.attacks import quality

        gate.check_known(cfg.require, quality.metric_names())
    if cfg.attack in ZH_ATTACKS:
        return with_gate(cfg, out, run_zh(cfg, out, split_name))
    split, examples, sources = inputs(cfg, split_name)
    predictor = load(cfg, split, examples)
    guard = checks.defence(cfg, predictor, examples, split.split, split.language) if cfg.defence else None
    attack = attack_part(cfg, predictor) if cfg.attack else None
    rank, world = distributed.setup(cfg.device)  # under torchrun each process attacks (or scans) its share
    if out is not None and rank == 0:
        out.create(as_dict(cfg), resume_free=(*RESUME_FREE, "require") if attack else ("require",))
    base = {"split": split.split, "dataset": cfg.dataset, "model": str(models.resolve(cfg.model))}
    if attack is None:
        metrics, records = clean_part(cfg, predictor, examples, sources, guard, base, rank)
        if rank > 0:
            return {"command": "evaluate", "metrics": {}}
        if out is not None:
            out.write_records(records)
    else:
        records = distributed.sharded_records(out, len(examples), lambda i: attack(examples[i], i),
                                              f"attack {cfg.attack}", rank, world)
        if rank > 0:
            return {"command": "evaluate", "metrics": {}}
        metrics = {**attack_metrics(records), "attack": cfg.attack, "attack_recipe": attack.note,
                   **attack.scorer.describe(), **base}
    if cfg.onion_lm and not cfg.defence:
        from advkit.poison.onion import count_words

        # over the evaluated examples themselves (the cache also holds triggered and attacked texts)
        removed = [count_words(e.text) - count_words(predictor.filter(e.text)) for e in examples]
        metrics.update(onion_lm=cfg.onion_lm, onion_threshold=cfg.onion_threshold,
                       onion_words_removed_mean=sum(removed) / len(removed) if removed else 0.0)
    if cfg.require:
        metrics["gate"] = gate.judge(cfg.require, metrics)
    if out is None:
        return {"command": "evaluate", "metrics": metrics}
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)


def inputs(cfg: EvaluateConfig, split_name: str):
    """(split, examples, sources): the fixed sample of the split, or --transfer-from's adversarial texts
    with their indices in the attack run (sources; None otherwise)."""
    if cfg.transfer_from:
        examples, sources = transferred(cfg.transfer_from)
        labels = tuple(str(i) for i in range(1 + max(e.label for e in examples)))
        return data.Split(cfg.transfer_from, "adversarial", "", labels, examples), examples, sources
    split = data.load(cfg.dataset, split_name, root=cfg.data_root, text_column=cfg.text_column,
                      text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    if not split.labelled:
        raise UserError(f"{cfg.dataset}: split '{split_name}' is unlabelled; accuracy needs labels (try --split dev)")
    if cfg.attack and split.language != "en":
        raise UserError(f"--attack {cfg.attack} is an English attack; {cfg.dataset} is {split.language} (use attack-zh)")
    return split, data.sample(split.examples, cfg.limit), None


def load(cfg: EvaluateConfig, split, examples):
    """What gets evaluated and attacked (advkit.predictor; a knn run: the combined one), behind ONION's
    filter with --onion-lm; its labels and the backdoor inputs checked before --out is touched."""
    from advkit.predictor import load_predictor

    seed_everything(cfg.seed)  # a model without a trained head gets the same random head every time
    predictor = load_predictor(cfg.model, max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device,
                               precision=cfg.precision, lambda_inf=cfg.lambda_inf)
    if cfg.onion_lm and not cfg.defence:  # --defence onion: the LM detects, nothing is filtered
        from advkit.poison.onion import OnionPredictor

        predictor = OnionPredictor(predictor, cfg.onion_lm, cfg.onion_threshold, cfg.device, cfg.max_length,
                                   cfg.data_root, split.language)
    n = predictor.num_labels
    if max(e.label for e in examples) >= n:
        raise UserError(f"{cfg.dataset} has {len(split.labels)} labels but model '{cfg.model}' has {n}")
    if cfg.trigger is not None:
        from advkit.poison.triggers import parse_triggers

        parse_triggers(cfg.trigger)
        if not 0 <= cfg.target < n:
            raise UserError(f"--target {cfg.target}: the model has labels 0..{n - 1}")
    return predictor


def clean_part(cfg: EvaluateConfig, predictor, examples, sources, guard, base: dict, rank: int):
    """(metrics, records): accuracy; a transfer's records point at the attack's examples; with --trigger the
    backdoor checks (the scan sharded across ranks), with --defence the detector's scores."""
    result = clean_accuracy(predictor, examples)
    records = result.pop("records")
    metrics = {**result, **base}
    if sources is not None:
        metrics.update(transfer_from=cfg.transfer_from, dataset=None)
        for record, source in zip(records, sources):
            record["attack_index"] = source
    if cfg.trigger:
        found, flips = checks.backdoor(predictor, examples, cfg)  # the scan is sharded; the rest is cheap
        metrics.update(found)
        for record, flipped in zip(records, flips):
            record["flipped_by_trigger"] = flipped
    if cfg.defence and rank == 0:
        metrics["defence"] = checks.defend(guard, predictor, examples, records, flips, cfg)
    return metrics, records


class attack_part:
    """One English attack on the predictor, as a function of (example, index) -> its scored record."""

    def __init__(self, cfg: EvaluateConfig, predictor):
        from advkit.attacks import recipes
        from advkit.attacks.quality import Scorer

        self.recipes, self.seed = recipes, cfg.seed
        self.attack, self.note = recipes.build(cfg.attack, predictor, lm=cfg.attack_lm, encoder=cfg.attack_encoder,
                                               query_budget=cfg.query_budget, batch_size=cfg.batch_size,
                                               device=cfg.device, goal=cfg.goal, min_similarity=cfg.min_similarity)
        self.scorer = Scorer(cfg.attack_encoder, cfg.device, cfg.data_root)  # similarity and fluency of a success

    def __call__(self, example, i: int) -> dict:
        seed_everything(self.seed + i)  # per example: any process, any resume gives the same record
        record = self.recipes.attack_one(self.attack, example, i)
        return {**record, **self.scorer.score(record)}


def with_gate(cfg: EvaluateConfig, out: RunDir | None, doc: dict) -> dict:
    """A run whose metrics another command wrote (attack-zh's), judged and written again with its gate."""
    if not cfg.require or not doc.get("metrics"):  # under torchrun only rank 0 has metrics
        return doc
    doc["metrics"]["gate"] = gate.judge(cfg.require, doc["metrics"])
    if out is not None:
        doc = out.write_metrics(doc["metrics"], doc["config"], seed=cfg.seed, device=cfg.device)
    return doc
