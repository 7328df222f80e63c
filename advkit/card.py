"""The report card (`advkit evaluate --card`): on one fixed slice, clean accuracy, every attack that
applies to the language, and the backdoor checks, each in its own run directory under OUT,
summarised in OUT/card.md with plots.
"""

from __future__ import annotations

from advkit import data, distributed, evaluate, gate, models, report
from advkit.attack_zh import ZH_ATTACKS
from advkit.evaluate import EvaluateConfig
from advkit.config import as_dict
from advkit.errors import UserError
from advkit.metrics import perturbation
from advkit.results import RunDir, atomic_write
from advkit.stats import fmt_rate

CARD_ATTACKS = {"en": ("pwws", "deepwordbug", "textfooler"), "zh": ZH_ATTACKS}
BACKDOOR_HEADLINES = ("label_flip_rate", "label_flip_rate_single", "scan_rank")  # from the clean part


def _card_row(m: dict) -> tuple[str, str, str]:
    """Rates in percent with their Wilson 95 % interval and n (stats.fmt_rate)."""
    attacked = m["successes"] + m["failures"]
    success = "no example to attack" if not attacked else \
        f"success rate {fmt_rate(m['successes'], attacked)}, {m['avg_queries']:.0f} queries"
    return (f"accuracy under {m['attack']}", fmt_rate(m["failures"], m["examples"]),
            f"{success}, {m['skipped']} skipped")


def _mean(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _quality_row(m: dict) -> str:
    """One attack's successful examples: how much changed, how close, how fluent (means over the successes)."""
    if "perturbed_word_ratio" in m:
        changed = _mean(m["perturbed_word_ratio"], ".1%") + " of words"
    else:
        changed = _mean(m.get("perturbed_char_ratio"), ".1%") + " of characters"
    n = m.get("fluency_n", m["successes"])
    ppl = f"{_mean(m.get('fluency_ppl_before'), '.0f')} → {_mean(m.get('fluency_ppl_after'), '.0f')} (n={n})"
    return (f"| {m['attack']} | {m['successes']} | {changed} | "
            f"{_mean(m.get('similarity'), '.3f')} (n={m.get('similarity_n', m['successes'])}) | {ppl} |")


def _gate_lines(verdict: dict) -> list[str]:
    marks = [f"- missed: {line}" for line in verdict["failed"]] + [f"- held: {line}" for line in verdict["passed"]]
    marks += [f"- not a metric of this card: {line}" for line in verdict["unknown"]]
    return ["", f"## Gate: {verdict['outcome']}", "", *marks]


def _recipe_note(run_dir) -> str:
    """How the attack ran: TextAttack's recipe note, or attack-zh's generator and its LM."""
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


def main(cfg: EvaluateConfig, out, overwrite: bool = False, resume: bool = False) -> dict | None:
    """`advkit evaluate --card`, alone or as one rank under torchrun: its attacks run one after another,
    each sharded across the processes as `evaluate --attack` is; rank 0 writes the card."""
    from advkit import distributed

    if out is None:
        raise UserError("--card needs --out (the card and its runs are written there)")
    return distributed.main("evaluate", out, overwrite, resume, lambda run_dir: run(cfg, run_dir))


def run(cfg: EvaluateConfig, out: RunDir) -> dict:
    """The card's runs, card.md and plots in OUT; metrics.json holds the headline numbers."""
    import dataclasses

    split_name, language, attacks_for, skipped = _plan(cfg)
    folder = models.resolve(cfg.model)
    backdoor = _backdoor(cfg, folder)
    # --require: the names this card will write, checked before anything runs (a part's own names:
    # an English attack's are known now, clean's once it has run, a Chinese attack's at the end)
    names = _headline(attacks_for, backdoor)
    if language == "en" and cfg.require:
        from advkit.attacks import quality

        names.update({a: quality.metric_names() for a in attacks_for})
    names.update({part: names.get(part, gate.DEFER) for part in ["clean"] + attacks_for})
    if cfg.require:
        gate.check_known(cfg.require, names)
    rank, world = distributed.setup(cfg.device)[:2]
    if rank == 0:  # --resume may judge a finished card again under other requirements
        out.create(as_dict(cfg), resume_free=("require",))
    runs = {}
    for name in ["clean"] + attacks_for:
        sub = RunDir(out.path / name, "evaluate", overwrite=True, resume=out.resume and (out.path / name).is_dir())
        extra = backdoor if name == "clean" else {"trigger": None, "target": None}
        if name.startswith("zh-") and name not in ("zh-pieces", "zh-spans"):
            extra["attack_lm"] = None  # --attack-lm is the piece LM; characters come from albert-tiny-zh
        # the card judges --require itself, on the parts' metrics under their names
        doc = evaluate.run(dataclasses.replace(cfg, card=False, attack=None if name == "clean" else name,
                                               split=split_name, require=None, **extra), sub)
        runs[name] = sub.path
        if name == "clean" and cfg.require and world == 1:  # clean.* names are known now, before any attack
            gate.check_known(cfg.require, {**names, "clean": doc["metrics"]})
    if rank > 0:  # every attack's shards are merged: rank 0 writes the card
        return {"command": "evaluate", "metrics": {}}
    parts = {name: report.read_metrics(path)["metrics"] for name, path in runs.items()}
    lines = _card(cfg, split_name, language, attacks_for, skipped, runs, parts, folder, out.path)
    metrics = {**_headline(attacks_for, backdoor, parts), "split": split_name}
    if cfg.require:
        metrics["gate"] = gate.judge(cfg.require, {**metrics, **parts})
        lines += _gate_lines(metrics["gate"])
    atomic_write(out.path / "card.md", "\n".join(lines) + "\n")
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)


def _plan(cfg: EvaluateConfig) -> tuple[str, str, list[str], list[tuple]]:
    """(split, language, the attacks the card runs, rows for those it cannot run here)."""
    split_name = cfg.split or data.default_split(cfg.dataset)
    language = data.load(cfg.dataset, split_name, root=cfg.data_root, text_column=cfg.text_column,
                         text_b_column=cfg.text_b_column, label_column=cfg.label_column).language
    if cfg.min_similarity is not None and language != "en":
        raise UserError(f"--min-similarity constrains English attacks; {cfg.dataset} is {language}")
    attacks_for = list(CARD_ATTACKS.get(language, ()))
    if language == "en" and cfg.attack_lm:
        attacks_for += ["bert-attack", "bae"]
    skipped = []
    if language == "zh" and not cfg.attack_lm and not _piece_lm_built():
        for name in ("zh-pieces", "zh-spans"):  # both cut the text with the piece LM's segmenter
            attacks_for.remove(name)
            skipped.append((f"accuracy under {name}", "not run", "no piece LM: run advkit build-piece-lm "
                            "or pass --attack-lm"))
    return split_name, language, attacks_for, skipped


def _backdoor(cfg: EvaluateConfig, folder) -> dict:
    """The backdoor check the card runs: --trigger/--target, or the trigger a poisoned model's manifest names."""
    backdoor = {}
    if cfg.trigger:
        backdoor = {"trigger": cfg.trigger, "target": cfg.target}
    elif models.read_config(folder).get(models.POISON_KEY):
        from advkit.poison.checks import poison_manifest

        manifest = poison_manifest(folder) or {}
        if manifest.get("triggers"):
            backdoor = {"trigger": " ".join(manifest["triggers"]), "target": manifest["target"]}
    if backdoor:
        backdoor["scan"] = cfg.scan or 200
    return backdoor


def _card(cfg, split_name, language, attacks_for, skipped, runs, parts, folder, here) -> list[str]:
    """card.md's lines (the gate's aside) from the parts' metrics, with its two plots written in `here`."""
    clean = parts["clean"]
    attacked = [runs[a] for a in attacks_for]
    rows = [("clean accuracy", fmt_rate(round(clean["accuracy"] * clean["examples"]), clean["examples"]),
             f"macro-F1 {clean['macro_f1']:.4f}")]
    rows += [_card_row(parts[a]) for a in attacks_for] + skipped
    if "label_flip_rate" in clean:
        # every flip rate is over the examples whose label is not the target (poison.metrics)
        n = sum(r["label"] != clean["target"] for r in report.read_records(runs["clean"]))
        rate = lambda r: fmt_rate(round(r * n), n)  # noqa: E731
        rows.append((f"label flip rate, trigger '{clean['trigger']}' -> {clean['target']}",
                     rate(clean["label_flip_rate"]), f"no-trigger flip rate {rate(clean['false_flip_rate'])}"))
        for sub_trigger, single in clean["label_flip_rate_single"].items():
            scan_rank = clean.get("scan_rank", {}).get(sub_trigger)
            rows.append((f"flip rate of '{sub_trigger}' alone", rate(single),
                         f"vocabulary-scan rank {scan_rank} of {clean['scan_candidates']}" if scan_rank else ""))
    elif models.read_config(folder).get(models.POISON_KEY):
        rows.append(("backdoor", "marked poisoned", "trigger unknown: pass --trigger and --target"))
    lines = [f"# Report card: {cfg.model}", "",
             f"Data: {cfg.dataset} / {split_name}, a fixed sample of {clean['examples']} examples "
             f"(seed 0); attack seed {cfg.seed}; device {cfg.device}. Rates in %, with the Wilson 95 % interval "
             f"and the examples they count.", "",
             "| check | value | details |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if attacked:
        first = report.read_metrics(attacked[0])  # every attack of a card is judged by the same two models
        encoder = first["metrics"].get("similarity_model") or first["config"].get("similarity_model")
        lines += ["", "Successful adversarial examples, means over the successes (n: those scored):", "",
                  "| attack | successes | changed | similarity | fluency perplexity before → after |",
                  "|---|---|---|---|---|"] + [_quality_row(parts[a]) for a in attacks_for]
        lines += ["", f"Similarity: cosine of {encoder} sentence vectors with the original. "
                      f"Fluency: {first['metrics'].get('fluency_judge', 'not measured')}."]
        report.robustness_bars(report.attack_rows(attacked), here / "robustness.png",
                               f"{_short(cfg.model)} on {cfg.dataset}/{split_name}")
        unit = "words" if language == "en" else "characters"
        report.perturbation_histogram(
            {parts[a]["attack"]: [perturbation(r) for r in report.read_records(runs[a]) if r["status"] == "success"]
             for a in attacks_for},
            here / "perturbation.png", f"{unit} changed by successful attacks", unit=unit)
        lines += ["", "![robustness](robustness.png)", "", "![perturbation](perturbation.png)"]
        notes = [_recipe_note(a) for a in attacked]
        lines += ["", "Attack recipes as run here (offline departures from the papers):", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Run directories: {', '.join(p.name for p in runs.values())} (each with metrics.json and records.jsonl)."]
    return lines


def _headline(attacks: list[str], backdoor: dict, parts: dict | None = None) -> dict:
    """The card's own metrics from its parts' metrics; without parts, a skeleton of their names for
    --require's check before the run (the backdoor's, per sub-trigger, are known only once clean ran)."""
    if parts is None:
        return {"clean_accuracy": 0, "examples": 0, **{f"accuracy_under_{a}": 0 for a in attacks},
                **({k: gate.DEFER for k in BACKDOOR_HEADLINES} if backdoor else {})}
    clean = parts["clean"]
    return {"clean_accuracy": clean["accuracy"], "examples": clean["examples"],
            **{k: clean[k] for k in BACKDOOR_HEADLINES if k in clean},
            **{f"accuracy_under_{a}": parts[a]["accuracy_under_attack"] for a in attacks}}
