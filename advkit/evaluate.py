"""Metric functions and evaluation runners (pure functions of predictions and labels)."""

from __future__ import annotations

from advkit import data, models
from advkit.config import EvaluateConfig, as_dict
from advkit.errors import UserError
from advkit.progress import track
from advkit.results import RunDir
from advkit.seeds import seed_everything


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


def attack_metrics(records: list[dict]) -> dict:
    """Adversarial metrics from per-example records (status: success | failed | skipped).

    Success rate is over the inputs the model got right (skipped ones excluded);
    accuracy under attack counts the failed attacks over all inputs.
    """
    n = len(records)
    if n == 0:
        raise ValueError("attack metrics of no records")
    success = [r for r in records if r["status"] == "success"]
    failed = [r for r in records if r["status"] == "failed"]
    attacked = success + failed
    return {
        "examples": n,
        "accuracy_before": len(attacked) / n,
        "accuracy_under_attack": len(failed) / n,
        "attack_success_rate": len(success) / len(attacked) if attacked else 0.0,
        "skipped": n - len(attacked),
        "successes": len(success),
        "avg_queries": sum(r["queries"] for r in attacked) / len(attacked) if attacked else 0.0,
        "perturbed_word_ratio": sum(r["perturbed_word_ratio"] for r in success) / len(success) if success else 0.0,
    }


# `evaluate --attack zh-<substitutes>` runs attack-zh's search with that substitute generator.
ZH_ATTACKS = ("zh-pieces", "zh-chars", "zh-words", "zh-glyph", "zh-homophone")


def backdoor_checks(predictor, examples, cfg: EvaluateConfig) -> dict:
    """Label flip rate of the full trigger and of each sub-trigger, and the vocabulary scan.

    The scan inserts each of `cfg.scan` vocabulary tokens alone (a seeded sample of
    whole-word tokens) plus the true sub-triggers, and ranks tokens by flip rate: a single
    trigger tops the list, a combinatorial trigger's parts should not.
    """
    from advkit.poison import metrics as pm
    from advkit.poison.triggers import parse_triggers

    triggers = parse_triggers(cfg.trigger)
    if cfg.target >= predictor.num_labels:
        raise UserError(f"--target {cfg.target}: the model has labels 0..{predictor.num_labels - 1}")
    if all(e.label == cfg.target for e in examples):
        raise UserError(f"--target {cfg.target}: every example has the target label; LFR needs others")
    m = {"trigger": cfg.trigger, "target": cfg.target,
         "false_flip_rate": pm.false_flip_rate(predictor, examples, cfg.target),
         "label_flip_rate": pm.label_flip_rate(predictor, examples, triggers, cfg.target, seed=cfg.seed),
         "label_flip_rate_single": pm.label_flip_rate_single(predictor, examples, triggers, cfg.target, seed=cfg.seed)}
    if cfg.scan:
        import random

        vocab = sorted(t for t in predictor.tokenizer.get_vocab() if t.isalpha() and t.isascii() and len(t) > 1)
        candidates = random.Random(cfg.seed).sample(vocab, min(cfg.scan, len(vocab)))
        scan = pm.vocab_scan(predictor, examples, candidates, cfg.target, triggers=triggers, seed=cfg.seed)
        m["scan_rank"] = scan["ranks"]
        m["scan_candidates"] = scan["candidates"]
        m["scan_top"] = scan["top"][:10]
    return m


def poison_manifest(folder) -> dict | None:
    """The trigger and target advkit poison recorded beside a poisoned model, if any."""
    import json
    from pathlib import Path

    folder = Path(folder)  # the poisoned model itself, or a victim under a poison run (OUT/victim/model)
    for path in (folder / "poison_manifest.json", folder.parent.parent / "model" / "poison_manifest.json"):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def load_predictor(ref: str, max_length: int, batch_size: int, device: str):
    """What gets evaluated and attacked: a knn run's combined KNN + linear predictor, else the classifier."""
    from advkit.finetune.predictor import load_predictor as load

    return load(ref, max_length=max_length, batch_size=batch_size, device=device), models.resolve(ref)


def zh_config(cfg: EvaluateConfig, split_name: str):
    """attack-zh's settings for `evaluate --attack zh-<substitutes>`: the same search, records and metrics."""
    import dataclasses

    from advkit.config import AttackZhConfig, DataOptions

    data_options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(DataOptions)}
    zcfg = AttackZhConfig(**data_options, model=cfg.model, split=split_name, limit=cfg.limit, lm=cfg.attack_lm,
                          substitutes=cfg.attack.removeprefix("zh-"), batch_size=cfg.batch_size,
                          max_length=cfg.max_length, seed=cfg.seed, device=cfg.device, label_check=cfg.label_check,
                          **({"max_queries": cfg.query_budget} if cfg.query_budget else {}))
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


def run(cfg: EvaluateConfig, out: RunDir | None) -> dict:
    split_name = cfg.split or default_split(cfg.dataset)
    if cfg.attack in ZH_ATTACKS:
        return run_zh(cfg, out, split_name)
    split = data.load(cfg.dataset, split_name, root=cfg.data_root, text_column=cfg.text_column,
                      text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    if not split.labelled:
        raise UserError(f"{cfg.dataset}: split '{split_name}' is unlabelled; accuracy needs labels (try --split dev)")
    examples = data.sample(split.examples, cfg.limit)
    if cfg.attack and split.language != "en":
        raise UserError(f"--attack {cfg.attack} is an English attack; {cfg.dataset} is {split.language} (use attack-zh)")
    seed_everything(cfg.seed)  # a model without a trained head gets the same random head every time
    predictor, folder = load_predictor(cfg.model, cfg.max_length, cfg.batch_size, cfg.device)
    if cfg.onion_lm:
        from advkit.poison.onion import OnionPredictor

        predictor = OnionPredictor(predictor, cfg.onion_lm, cfg.onion_threshold, cfg.device, cfg.max_length)
    n = predictor.num_labels
    if max(e.label for e in examples) >= n:
        raise UserError(f"{cfg.dataset} has {len(split.labels)} labels but model '{cfg.model}' has {n}")
    if cfg.trigger is not None:  # the backdoor checks' inputs, refused before --out is touched
        from advkit.poison.triggers import parse_triggers

        parse_triggers(cfg.trigger)
        if not 0 <= cfg.target < n:
            raise UserError(f"--target {cfg.target}: the model has labels 0..{n - 1}")
    attack = None
    if cfg.attack:
        from advkit import attacks

        attack, note = attacks.build(cfg.attack, predictor, lm=cfg.attack_lm, encoder=cfg.attack_encoder,
                                     query_budget=cfg.query_budget, batch_size=cfg.batch_size, device=cfg.device)
    if out is not None:
        out.create(as_dict(cfg))
    base = {"split": split_name, "dataset": cfg.dataset, "model": str(folder)}
    if attack is None:
        result = clean_accuracy(predictor, examples)
        records = result.pop("records")
        metrics = {**result, **base}
        if cfg.trigger:
            metrics.update(backdoor_checks(predictor, examples, cfg))
        if out is not None:
            out.write_records(records)
    else:
        records = out.read_records() if out is not None and out.resume else []
        done = {r["index"] for r in records}
        todo = [(i, e) for i, e in enumerate(examples) if i not in done]
        for i, example in track(todo, f"attack {cfg.attack}", total=len(todo)):
            seed_everything(cfg.seed + i)  # per example, so a resumed run gives the same records
            record = attacks.attack_one(attack, example, i)
            records.append(record)
            if out is not None:
                out.append_record(record)
        records.sort(key=lambda r: r["index"])
        metrics = {**attack_metrics(records), "attack": cfg.attack, "attack_recipe": note, **base}
    if cfg.onion_lm:
        from advkit.poison.onion import count_words

        # over the evaluated examples themselves (the cache also holds triggered and attacked texts)
        removed = [count_words(e.text) - count_words(predictor.filter(e.text)) for e in examples]
        metrics.update(onion_lm=cfg.onion_lm, onion_threshold=cfg.onion_threshold,
                       onion_words_removed_mean=sum(removed) / len(removed) if removed else 0.0)
    if out is None:
        return {"command": "evaluate", "metrics": metrics}
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)


CARD_ATTACKS = {"en": ("pwws", "deepwordbug", "textfooler"),
                "zh": ("zh-pieces", "zh-chars", "zh-words", "zh-glyph", "zh-homophone")}


def _card_row(m: dict) -> tuple[str, str, str]:
    if not m["successes"]:
        changed = "nothing changed"
    elif "perturbed_word_ratio" in m:
        changed = f"{m['perturbed_word_ratio']:.1%} words changed"
    else:
        changed = f"{m['perturbed_char_ratio']:.1%} characters changed"
    success = "no example to attack" if m["attack_success_rate"] is None else \
        f"success rate {m['attack_success_rate']:.4f}, {m['avg_queries']:.0f} queries"
    return (f"accuracy under {m['attack']}", f"{m['accuracy_under_attack']:.4f}",
            f"{success}, {changed}, {m['skipped']} skipped")


def _recipe_note(run_dir) -> str:
    """How the attack ran: TextAttack's recipe note, or attack-zh's generator and its LM."""
    from advkit import report

    m = report.read_metrics(run_dir)
    if "attack_recipe" in m["metrics"]:
        return m["metrics"]["attack_recipe"]
    c = m.get("config", {})
    lm = f", substitute LM {c['lm']}" if c.get("lm") else ""
    return (f"{m['metrics']['attack']}: attack-zh's greedy search with {c.get('substitutes')} substitutes "
            f"(top {c.get('top_k')}{lm}), at most {c.get('max_perturb')} of the units changed, "
            f"label check {m['metrics'].get('label_check', 'none')}")


def _short(ref: str) -> str:
    """A model reference short enough for a plot title: run directories are often named after the data."""
    parts = ref.rstrip("/").split("/")
    return ref if len(ref) <= 60 else "…/" + "/".join(parts[-3:])


def _piece_lm_built() -> bool:
    try:
        models.resolve("piece-lm-zh")
    except UserError:
        return False
    return True


def run_card(cfg: EvaluateConfig, out: RunDir) -> dict:
    """The report card: on one fixed slice, clean accuracy and every applicable attack,
    each in its own run directory under OUT, summarised in OUT/card.md with plots."""
    import dataclasses
    from pathlib import Path

    from advkit import report

    split_name = cfg.split or default_split(cfg.dataset)
    language = data.load(cfg.dataset, split_name, root=cfg.data_root, text_column=cfg.text_column,
                         text_b_column=cfg.text_b_column, label_column=cfg.label_column).language
    attacks_for = list(CARD_ATTACKS.get(language, ()))
    if language == "en" and cfg.attack_lm:
        attacks_for += ["bert-attack", "bae"]
    skipped_attacks = []
    if language == "zh" and not cfg.attack_lm and not _piece_lm_built():
        attacks_for.remove("zh-pieces")
        skipped_attacks.append(("accuracy under zh-pieces", "not run", "no piece LM: run advkit build-piece-lm "
                                "or pass --attack-lm"))
    folder = models.resolve(cfg.model)
    backdoor = {}
    if cfg.trigger:
        backdoor = {"trigger": cfg.trigger, "target": cfg.target}
    elif models.read_config(folder).get(models.POISON_KEY):
        manifest = poison_manifest(folder) or {}
        if manifest.get("triggers"):
            backdoor = {"trigger": " ".join(manifest["triggers"]), "target": manifest["target"]}
    if backdoor:
        backdoor["scan"] = cfg.scan or 200
    out.create(as_dict(cfg))
    runs: dict[str, Path] = {}
    for name in ["clean"] + attacks_for:
        sub = RunDir(out.path / name, "evaluate", overwrite=True, resume=out.resume and (out.path / name).is_dir())
        extra = backdoor if name == "clean" else {"trigger": None, "target": None}
        if name.startswith("zh-") and name != "zh-pieces":
            extra["attack_lm"] = None  # --attack-lm is the piece LM; characters come from albert-tiny-zh
        run(dataclasses.replace(cfg, card=False, attack=None if name == "clean" else name, split=split_name, **extra),
            sub)
        runs[name] = sub.path
    clean = report.read_metrics(runs["clean"])["metrics"]
    attacked = [runs[a] for a in attacks_for]
    rows = [("clean accuracy", f"{clean['accuracy']:.4f}", f"{clean['examples']} examples")]
    rows += [_card_row(report.read_metrics(a)["metrics"]) for a in attacked] + skipped_attacks
    if "label_flip_rate" in clean:
        rows.append((f"label flip rate, trigger '{clean['trigger']}' -> {clean['target']}",
                     f"{clean['label_flip_rate']:.4f}", f"no-trigger flip rate {clean['false_flip_rate']:.4f}"))
        for sub_trigger, rate in clean["label_flip_rate_single"].items():
            rank = clean.get("scan_rank", {}).get(sub_trigger)
            rows.append((f"flip rate of '{sub_trigger}' alone", f"{rate:.4f}",
                         f"vocabulary-scan rank {rank} of {clean['scan_candidates']}" if rank else ""))
    elif models.read_config(folder).get(models.POISON_KEY):
        rows.append(("backdoor", "marked poisoned", "trigger unknown: pass --trigger and --target"))
    lines = [f"# Report card: {cfg.model}", "",
             f"Data: {cfg.dataset} / {split_name}, a fixed sample of {clean['examples']} examples "
             f"(seed 0); attack seed {cfg.seed}; device {cfg.device}.", "",
             "| check | value | details |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if attacked:
        report.robustness_bars(report.attack_rows(attacked), out.path / "robustness.png",
                               f"{_short(cfg.model)} on {cfg.dataset}/{split_name}")
        unit = "words" if language == "en" else "characters"
        report.perturbation_histogram(
            {report.read_metrics(a)["metrics"]["attack"]: [report.perturbation(r) for r in report.read_records(a)
                                                          if r["status"] == "success"] for a in attacked},
            out.path / "perturbation.png", f"{unit} changed by successful attacks", unit=unit)
        lines += ["", "![robustness](robustness.png)", "", "![perturbation](perturbation.png)"]
        notes = [_recipe_note(a) for a in attacked]
        lines += ["", "Attack recipes as run here (offline departures from the papers):", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Run directories: {', '.join(p.name for p in runs.values())} (each with metrics.json and records.jsonl)."]
    from advkit.results import atomic_write

    atomic_write(out.path / "card.md", "\n".join(lines) + "\n")
    metrics = {"clean_accuracy": clean["accuracy"], "examples": clean["examples"], "split": split_name,
               **{k: clean[k] for k in ("label_flip_rate", "label_flip_rate_single", "scan_rank") if k in clean},
               **{f"accuracy_under_{report.read_metrics(a)['metrics']['attack']}":
                  report.read_metrics(a)["metrics"]["accuracy_under_attack"] for a in attacked}}
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
