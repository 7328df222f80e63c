"""The backdoor checks `advkit evaluate --trigger --target` runs on any model (METHODS.md §2): the
label flip rates, the vocabulary scan (`--scan`) and a detector (`--defence`, advkit.poison.defences)
fitted on clean dev examples. `cfg` is evaluate's settings (advkit.evaluate.EvaluateConfig)."""

from __future__ import annotations

from advkit import data
from advkit.errors import UserError


def backdoor(predictor, examples, cfg) -> tuple[dict, list]:
    """poison.metrics.backdoor_metrics for --trigger/--target, and the vocabulary scan (--scan).

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
    # per example, kept in the records for paired tests between models (the same seed inserts at the
    # same positions)
    flips = pm.label_flips(predictor, examples, triggers, cfg.target, seed=cfg.seed)
    m = {"trigger": cfg.trigger, "target": cfg.target,
         **pm.backdoor_metrics(predictor, examples, triggers, cfg.target, cfg.seed, flips=flips)}
    if cfg.scan:
        import random

        vocab = sorted(t for t in predictor.tokenizer.get_vocab() if t.isalpha() and t.isascii() and len(t) > 1)
        candidates = vocab if cfg.scan < 0 else random.Random(cfg.seed).sample(vocab, min(cfg.scan, len(vocab)))
        scan = pm.vocab_scan(predictor, examples, candidates, cfg.target, triggers=triggers, seed=cfg.seed)
        m["scan_rank"] = scan["ranks"]
        m["scan_rank_interval"] = scan["rank_intervals"]
        m["scan_rate"] = scan["rates"]
        m["scan_candidates"] = scan["candidates"]
        m["scan_examples"] = scan["examples"]
        m["scan_top"] = scan["top"][:10]
    return m, flips


DEFENCE_DEV = 200  # clean dev examples a --defence is fitted and thresholded on (all, where fewer)


def defence(cfg, predictor, examples, split_name: str, language: str = "") -> tuple:
    """(the --defence, its clean dev examples), made before --out is touched: a seeded sample of the dev
    split (the examples evaluated here left out, when dev is the split evaluated)."""
    from advkit.poison import defences

    dev = data.load(cfg.dataset, "dev", root=cfg.data_root, text_column=cfg.text_column,
                    text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    seen = {(e.text, e.text_b) for e in examples} if split_name == "dev" else set()
    dev = data.sample([e for e in dev.examples if (e.text, e.text_b) not in seen], DEFENCE_DEV, seed=cfg.seed)
    if len(dev) < 20:  # 5 % of fewer is no threshold
        raise UserError(f"--defence {cfg.defence}: {len(dev)} clean dev examples left to set its threshold; "
                        "it needs 20 (evaluate another split)")
    perplexity = None
    if cfg.defence == "onion":
        from advkit.fluency import perplexity_lm

        perplexity = perplexity_lm(cfg.onion_lm, cfg.device, cfg.max_length, "--onion-lm", cfg.data_root, language)
    return defences.build(cfg.defence, predictor, cfg.target, cfg.seed, perplexity), dev


def defend(found, predictor, examples, records, flips, cfg) -> dict:
    """--defence fitted and thresholded on its dev examples, scored on the evaluated examples and their
    triggered twins (the LFR's texts: same seed); each record gets its scores."""
    from advkit.poison import defences
    from advkit.poison import metrics as pm
    from advkit.poison.triggers import parse_triggers

    window = getattr(predictor, "tokenizer", None), getattr(predictor, "max_length", None)
    triggered = pm.with_trigger(examples, parse_triggers(cfg.trigger), cfg.target, *window, cfg.seed)
    m, clean, twins = defences.defend(found[0], predictor, found[1], examples, triggered,
                                      [r["prediction"] for r in records], flips)
    for record, score, twin in zip(records, clean, twins):
        record["suspicion"], record["suspicion_triggered"] = score, twin
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
