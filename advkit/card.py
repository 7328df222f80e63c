"""The report card (`advkit evaluate --card`): on one fixed slice, clean accuracy, every attack that
applies to the language, and the backdoor checks, each in its own run directory under OUT,
summarised in OUT/card.md with plots.
"""

from __future__ import annotations

from advkit import data, distributed, evaluate, models, report
from advkit.attack_zh import ZH_ATTACKS
from advkit.config import EvaluateConfig, as_dict
from advkit.errors import UserError
from advkit.metrics import perturbation
from advkit.results import RunDir, atomic_write

CARD_ATTACKS = {"en": ("pwws", "deepwordbug", "textfooler"), "zh": ZH_ATTACKS}


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
    from pathlib import Path

    split_name = cfg.split or data.default_split(cfg.dataset)
    language = data.load(cfg.dataset, split_name, root=cfg.data_root, text_column=cfg.text_column,
                         text_b_column=cfg.text_b_column, label_column=cfg.label_column).language
    attacks_for = list(CARD_ATTACKS.get(language, ()))
    if language == "en" and cfg.attack_lm:
        attacks_for += ["bert-attack", "bae"]
    skipped_attacks = []
    if language == "zh" and not cfg.attack_lm and not _piece_lm_built():
        for name in ("zh-pieces", "zh-spans"):  # both cut the text with the piece LM's segmenter
            attacks_for.remove(name)
            skipped_attacks.append((f"accuracy under {name}", "not run", "no piece LM: run advkit build-piece-lm "
                                    "or pass --attack-lm"))
    folder = models.resolve(cfg.model)
    backdoor = {}
    if cfg.trigger:
        backdoor = {"trigger": cfg.trigger, "target": cfg.target}
    elif models.read_config(folder).get(models.POISON_KEY):
        manifest = evaluate.poison_manifest(folder) or {}
        if manifest.get("triggers"):
            backdoor = {"trigger": " ".join(manifest["triggers"]), "target": manifest["target"]}
    if backdoor:
        backdoor["scan"] = cfg.scan or 200
    rank = distributed.setup(cfg.device)[0]
    if rank == 0:
        out.create(as_dict(cfg))
    runs: dict[str, Path] = {}
    for name in ["clean"] + attacks_for:
        sub = RunDir(out.path / name, "evaluate", overwrite=True, resume=out.resume and (out.path / name).is_dir())
        extra = backdoor if name == "clean" else {"trigger": None, "target": None}
        if name.startswith("zh-") and name not in ("zh-pieces", "zh-spans"):
            extra["attack_lm"] = None  # --attack-lm is the piece LM; characters come from albert-tiny-zh
        evaluate.run(dataclasses.replace(cfg, card=False, attack=None if name == "clean" else name, split=split_name, **extra),
            sub)
        runs[name] = sub.path
    if rank > 0:  # every attack's shards are merged: rank 0 writes the card
        return {"command": "evaluate", "metrics": {}}
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
            {report.read_metrics(a)["metrics"]["attack"]: [perturbation(r) for r in report.read_records(a)
                                                          if r["status"] == "success"] for a in attacked},
            out.path / "perturbation.png", f"{unit} changed by successful attacks", unit=unit)
        lines += ["", "![robustness](robustness.png)", "", "![perturbation](perturbation.png)"]
        notes = [_recipe_note(a) for a in attacked]
        lines += ["", "Attack recipes as run here (offline departures from the papers):", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Run directories: {', '.join(p.name for p in runs.values())} (each with metrics.json and records.jsonl)."]
    atomic_write(out.path / "card.md", "\n".join(lines) + "\n")
    metrics = {"clean_accuracy": clean["accuracy"], "examples": clean["examples"], "split": split_name,
               **{k: clean[k] for k in ("label_flip_rate", "label_flip_rate_single", "scan_rank") if k in clean},
               **{f"accuracy_under_{report.read_metrics(a)['metrics']['attack']}":
                  report.read_metrics(a)["metrics"]["accuracy_under_attack"] for a in attacked}}
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
