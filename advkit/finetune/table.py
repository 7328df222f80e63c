"""The KNN-BERT table (Li et al. 2021, arXiv 2110.02523, Tables 1-3 in spirit) from run directories.

    python -m advkit.finetune.table results/knn

reads the runs recipes/knn/table.sh writes where advkit.layout puts them: per data set and setting (rich or
shots16) each method's run (ce, scl, moco, knn; knn-pretrained: the control) with its records.jsonl, and,
where present, its attacked runs (<run>-<attack>, attack: pwws, deepwordbug), and per seed the same names
(ce, knn, at and their PWWS runs, knn-adaptive-pwws and knn-transfer-pwws: robustness over seeds against the
strongest attack), and writes ROOT/table.md with intervals (advkit.stats) and paired tests where
per-example records exist.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from advkit import layout, stats
from advkit.knn_bert.selection import selection_margin
from advkit.report import read_optional as _read, read_records, run_hours, write_table

METHODS = ("ce", "scl", "moco", "knn")
ATTACKS = (("pwws", "PWWS"), ("deepwordbug", "DeepWordBug"))


def _epochs(ms: dict) -> str:
    """Epochs each method trained; with --patience, whether its dev accuracy had stopped improving."""
    parts, open_ = [], []
    for name, m in ms.items():
        if m is None or "epochs_trained" not in m:
            continue
        parts.append(f"{name.upper() if name != 'moco' else 'MoCo'} {m['epochs_trained']}")
        if m.get("converged") is False:
            open_.append(name)
    if not parts:
        return "–"
    text = ", ".join(parts)
    if any("converged" in m for m in ms.values() if m):
        text += " (still improving: " + ", ".join(open_) + ")" if open_ else " (all converged)"
    return text


def _cell(m: dict | None, key: str) -> str:
    """A rich-source accuracy with its Wilson 95 % interval; a few-shot one as mean ± the t interval's
    half-width over the seeds (with the std when the per-seed values are not stored)."""
    if m is None or (m.get(key) is None and f"{key}_mean" not in m):
        return "–"
    if "per_seed" in m:
        values = [r[key] for r in m["per_seed"].values() if r.get(key) is not None]
        mean, half = stats.t_interval(values)
        return f"{100 * mean:.1f} ± {100 * half:.1f}" if half is not None else f"{100 * mean:.1f}"
    if f"{key}_mean" in m:
        return f"{100 * m[f'{key}_mean']:.1f} ± {100 * m[f'{key}_std']:.1f} (std)"
    n = m["eval_examples"]
    return f"{100 * m[key]:.1f} {stats.fmt_interval(*stats.wilson(round(m[key] * n), n))}"


def _correct(run: Path, key: str = "prediction") -> dict[int, bool] | None:
    records = read_records(run)
    return {r["index"]: r[key] == r["label"] for r in records} if records else None


def _lambda(knn: dict) -> str:
    """lambda_inf, flagged † where dev chose it within one standard error of the next grid value."""
    found = selection_margin(knn)
    if found is None or not found["flagged"]:
        return f"{knn['lambda_inf']}"
    return (f"{knn['lambda_inf']} † (dev margin {100 * found['margin']:.1f} over {found['runner_up']:g}, "
            f"SE {100 * found['se']:.1f}, n={found['n']})")


def _mcnemar(a: dict | None, b: dict | None) -> str:
    """b vs a on the same examples: b's accuracy minus a's (points), McNemar's exact p; * p < 0.05."""
    if not a or not b or set(a) != set(b):
        return "–"
    keys = sorted(a)
    t = stats.mcnemar([a[k] for k in keys], [b[k] for k in keys])
    diff = 100 * (t["b_only"] - t["a_only"]) / t["n"]
    return f"{diff:+.1f}, p={t['p_value']:.3g}{stats.mark(t['p_value'])}"


def _seed_t(ce: dict | None, knn: dict | None) -> dict | None:
    """Few-shot: KNN combined minus CE paired by seed (stats.paired_t), None below two shared seeds."""
    if not ce or not knn or "per_seed" not in ce or "per_seed" not in knn:
        return None
    seeds = sorted(set(ce["per_seed"]) & set(knn["per_seed"]), key=int)
    if len(seeds) < 2:
        return None
    return stats.paired_t([ce["per_seed"][s]["eval_accuracy"] for s in seeds],
                          [knn["per_seed"][s]["accuracy_combined"] for s in seeds])


def _paired_seeds(ce: dict | None, knn: dict | None) -> str:
    """Few-shot: KNN combined minus CE paired by seed, mean ± t half-width, paired t-test p."""
    t = _seed_t(ce, knn)
    if t is None:
        return "–"
    return (f"{100 * t['mean']:+.1f} ± {100 * t['half_width']:.1f}, p={t['p_value']:.3g}{stats.mark(t['p_value'])} "
            f"({t['n']} seeds, paired t)")


def build(root: Path) -> str:
    found = {json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("config", {}).get("model")
             for m in METHODS for run in layout.runs(root, "knn", "run", run=m) if (run / "metrics.json").is_file()}
    lines = [f"# KNN-BERT and its baselines on {', '.join(sorted(m for m in found if m)) or 'minilm-l6'}", "",
             "Accuracy (%) on the evaluation split (see the sizes column), with its 95 % interval: Wilson's for "
             "one run, mean ± Student's t half-width over seeds for 16-shot (std where only the std was stored). "
             "KNN: linear head (cls), KNN vote (knn), and their mix by lambda_inf (combined), lambda_inf chosen on "
             "dev (imdb: on 10 % of train held out), never on the reported split; † marks a choice whose dev accuracy "
             "beats the next grid value's by no more than one standard error of it, sqrt(a(1 - a)/n), so another dev "
             "sample could have chosen otherwise (its KNN vote and head are then attacked alone too, below). KNN pre-trained: the KNN vote "
             "over the un-fine-tuned encoder (what pre-training alone gives). Few-shot: 16 examples per class, seeds "
             "13, 21, 42, 87, 100. KNN − CE: KNN combined minus CE on the same examples, McNemar's exact test "
             "(needs per-example records; * p < 0.05 before any correction: the claims below are Holm-adjusted); few-shot: the difference paired by seed, mean ± t half-width, "
             "paired t-test. Under PWWS: accuracy (%) on a fixed sample of n test "
             "examples (seed 0), before -> under PWWS, which attacks the CE model and the KNN model's combined "
             "predictor; the p compares their accuracies under attack on the same examples (McNemar); the same "
             "for DeepWordBug. Epochs: what each method trained; where --patience ran, until its dev accuracy "
             "stopped improving (converged) or --epochs ran out (still improving).", "",
             "| data set | setting | train / eval (split) | epochs | CE | SCL | MoCo | KNN cls | KNN knn | KNN combined "
             "| KNN pre-trained | lambda_inf | KNN − CE | " + " | ".join(
                 f"under {label}: CE / KNN combined | {label}: KNN − CE" for _, label in ATTACKS) + " |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|---|" * len(ATTACKS)]
    seconds = 0.0
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for setting in ("rich", "shots16"):
            here = layout.run(root, "knn", "setting", dataset=dataset, setting=setting)
            runs = {m: _read(here / m) for m in METHODS}
            if not any(runs.values()):
                continue
            seconds += sum(r["metrics"].get("train_seconds", 0) for r in runs.values() if r)
            ms = {k: (r["metrics"] if r else None) for k, r in runs.items()}
            any_m = next(m for m in ms.values() if m)
            knn = ms["knn"]
            pretrained = (_read(here / "knn-pretrained") or {}).get("metrics")
            sizes = f"{any_m['train_examples']} / {any_m['eval_examples']} ({any_m['eval_split']})"
            if knn is not None and knn["train_examples"] != any_m["train_examples"]:
                sizes += f"; KNN trains on {knn['train_examples']} (the rest chose lambda_inf)"
            lam = "–" if knn is None else (_lambda(knn) if "lambda_inf_mean" not in knn
                                           else f"{knn['lambda_inf_mean']:.2f} ± {knn['lambda_inf_std']:.2f}")
            attacked = []
            for attack, _ in ATTACKS:
                cells = [_pwws((_read(here / f"{m}-{attack}") or {}).get("metrics")) for m in ("ce", "knn")]
                under = [_under_attack(here / f"{m}-{attack}") for m in ("ce", "knn")]
                attacked += [" / ".join(cells), _mcnemar(*under)]
            lines.append(f"| {dataset} | {'rich-source' if setting == 'rich' else '16-shot'} | {sizes} | "
                         f"{_epochs(ms)} | "
                         f"{_cell(ms['ce'], 'eval_accuracy')} | {_cell(ms['scl'], 'eval_accuracy')} | "
                         f"{_cell(ms['moco'], 'eval_accuracy')} | {_cell(knn, 'accuracy_cls')} | "
                         f"{_cell(knn, 'accuracy_knn')} | {_cell(knn, 'accuracy_combined')} | "
                         f"{_cell(pretrained, 'accuracy_knn')} | {lam} | "
                         f"{_paired_seeds(ms['ce'], knn) if setting == 'shots16' else _mcnemar(_correct(here / 'ce'), _correct(here / 'knn'))} | "
                         f"{' | '.join(attacked)} |")
    runs, hours = run_hours(root)
    lines += ["", f"Training time summed over the runs: {seconds / 60:.1f} min. Every run of the table (training, "
              f"controls, attacks: {runs} run directories) took {hours:.1f} h summed, start to end (provenance)."]
    lines += _head_alone(root)
    lines += _over_seeds(root)
    lines += _claims(root)
    return "\n".join(lines) + "\n"


def _head_alone(root: Path) -> list[str]:
    """The KNN model's linear head attacked alone (rich/knn-cls-<attack>): whether the KNN
    model's robustness is its encoder's or its vote's. A uniform k-NN vote moves in steps of 1/k, so a
    score-based attack sees no change from most single substitutions (a search that is blind is not a
    model that is robust)."""
    out = []
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        here = layout.run(root, "knn", "setting", dataset=dataset, setting="rich")
        for attack, label in ATTACKS:
            m = (_read(here / f"knn-cls-{attack}") or {}).get("metrics")
            if m is None:
                continue
            alone = _under_attack(here / f"knn-cls-{attack}")
            line = (f"- {dataset}, {label}: the KNN model's linear head alone {_pwws(m)}; against CE "
                    f"{_mcnemar(_under_attack(here / f'ce-{attack}'), alone)}, against KNN combined "
                    f"{_mcnemar(_under_attack(here / f'knn-{attack}'), alone)} (McNemar, same examples).")
            vote = {g: (_read(here / f"knn-{g}-{attack}") or {}).get("metrics") for g in ("vote", "vote-adaptive")}
            if any(vote.values()):  # dev's lambda_inf not firm: the vote attacked alone too (recipes/knn/table.sh)
                line += (f" Its KNN vote alone (`--lambda-inf 1`): {_pwws(vote['vote'])} by the plain goal, "
                         f"{_pwws(vote['vote-adaptive'])} by the adaptive one.")
            transfer = (_read(here / f"knn-transfer-{attack}") or {}).get("metrics")
            if transfer:
                n = transfer["examples"]
                line += (f" KNN combined on the head's {n} adversarial examples: accuracy "
                         f"{100 * transfer['accuracy']:.1f} "
                         f"{stats.fmt_interval(*stats.wilson(round(transfer['accuracy'] * n), n))}.")
                worst = _worst_case(here, attack)
                if worst:
                    line += (f" KNN combined against the stronger of the two per example (its own attack, the "
                             f"head's adversarial example): {stats.fmt_rate(sum(worst.values()), len(worst))}.")
            out.append(line)
    if out:
        out = ["", "The KNN model's linear head (KNN cls) attacked alone, on the same examples (and, where dev's "
               "lambda_inf was not firm (†) and the model's weights were kept, its KNN vote alone), and the adversarial "
               "examples the head yields fed to the KNN model's combined predictor: is the KNN model robust, or is the "
               "attack blind to its vote? A uniform vote over k = 10 neighbours moves in steps of 0.1, so most "
               "single substitutions leave a score-based attack's scores unchanged; a vote that is fooled by the "
               "head's adversarial examples is not robust to them.", "", *out]
    return out


SEED_ATTACK = "pwws"  # the attack of the seeds' runs (recipes/knn/table.sh)


def _seed_dirs(root: Path, dataset: str) -> list[Path]:
    return sorted(layout.runs(root, "knn", "seed", dataset=dataset), key=lambda p: int(p.name))


def _strongest(here: Path) -> dict[int, bool] | None:
    """Per example: KNN-BERT still right under each attack it met here: its own plain PWWS, the adaptive
    PWWS (knn-adaptive-pwws), and its head's adversarial examples (knn-transfer-pwws; none to transfer
    where the head's attack, knn-cls-pwws, found none); None until all three ran."""
    own, adaptive = _under_attack(here / f"knn-{SEED_ATTACK}"), _under_attack(here / f"knn-adaptive-{SEED_ATTACK}")
    transfer = read_records(here / f"knn-transfer-{SEED_ATTACK}")
    head = (_read(here / f"knn-cls-{SEED_ATTACK}") or {}).get("metrics") or {}
    transferred = (here / f"knn-transfer-{SEED_ATTACK}").is_dir() or head.get("successes") == 0
    if not own or not adaptive or set(own) != set(adaptive) or not transferred:
        return None
    fooled = {r["attack_index"] for r in transfer if r["prediction"] != r["label"]}
    return {i: own[i] and adaptive[i] and i not in fooled for i in own}


def _over_seeds(root: Path) -> list[str]:
    """Robustness over seeds: per seed, CE, KNN-BERT and AT (each trained at that seed) under PWWS on the
    same test examples, KNN-BERT also under the adaptive PWWS and its head's adversarial examples, and its
    head and (where dev's lambda_inf was not firm) its vote attacked alone."""
    rows = []
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for here in _seed_dirs(root, dataset):
            m = {k: (_read(here / k) or {}).get("metrics") for k in
                 ("ce", "knn", "at", *(f"{r}-{SEED_ATTACK}" for r in ("ce", "knn", "knn-adaptive", "knn-cls",
                                                                      "knn-vote", "knn-vote-adaptive", "at")))}
            strongest = _strongest(here)
            worst = "–" if strongest is None else stats.fmt_rate(sum(strongest.values()), len(strongest))
            under = {r: _under_attack(here / f"{r}-{SEED_ATTACK}") for r in ("ce", "knn", "knn-adaptive", "at")}
            rows.append(f"| {dataset} | {here.name} | {_cell(m['ce'], 'eval_accuracy')} | "
                        f"{_cell(m['knn'], 'accuracy_combined')} | {_cell(m['at'], 'eval_accuracy')} | "
                        f"{_lambda(m['knn']) if m['knn'] else '–'} | "
                        f"{_pwws(m[f'ce-{SEED_ATTACK}'])} | {_pwws(m[f'knn-{SEED_ATTACK}'])} | "
                        f"{_pwws(m[f'knn-adaptive-{SEED_ATTACK}'])} | {_mcnemar(under['knn'], under['knn-adaptive'])} | "
                        f"{worst} | {_mcnemar(under['ce'], strongest)} | {_pwws(m[f'knn-cls-{SEED_ATTACK}'])} | "
                        f"{_pwws(m[f'knn-vote-{SEED_ATTACK}'])} / {_pwws(m[f'knn-vote-adaptive-{SEED_ATTACK}'])} | "
                        f"{_pwws(m[f'at-{SEED_ATTACK}'])} | "
                        f"{_mcnemar(under['ce'], under['at'])} | {_mcnemar(under['at'], strongest)} |")
    if not rows:
        return []
    return ["", "## Robustness over seeds, against the strongest attack", "",
            "CE, KNN-BERT and AT (adversarial training, `--method at`: A2T-style, one clean epoch then adversarial "
            "ones) trained at each seed (the rich-source recipe, weights kept), all attacked by PWWS on the same n "
            "test examples (seed 0). KNN-BERT meets three attackers: PWWS scored by its shipped vote "
            "(plain), the adaptive PWWS (`--goal adaptive`: the search reads a smooth twin of the vote, each class's "
            "nearest keys under a softmax, and succeeds only when the shipped vote flips), and its linear head's "
            "adversarial examples (transfer). Strongest: still right under all three. Beside them, KNN-BERT's "
            "parts attacked alone: its linear head, and its KNN vote (`--lambda-inf 1`, by the plain and the "
            "adaptive goal) where dev's lambda_inf was not firm (†) and the run does not ship the vote alone "
            "already. Accuracy (%) before -> under the attack with its Wilson interval; differences: McNemar's "
            "exact p on the same examples (before correction; the pooled claim below is in the Holm family).", "",
            "| data set | seed | CE clean | KNN clean (combined) | AT clean | lambda_inf | CE under PWWS | "
            "KNN under PWWS | KNN under adaptive PWWS | adaptive − plain | KNN under the strongest | "
            "strongest KNN − CE | KNN head alone under PWWS | KNN vote alone under PWWS: plain / adaptive | "
            "AT under PWWS | AT − CE | strongest KNN − AT |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, *_against_at(root)]


def _pooled(root: Path, dataset: str, a, b) -> dict | None:
    """stats.stratified_paired of b vs a over the seeds where both exist on the same examples; a and b
    map a seed folder to {example: correct}."""
    strata = []
    for here in _seed_dirs(root, dataset):
        x, y = a(here), b(here)
        if x and y and set(x) == set(y):
            keys = sorted(x)
            strata.append(([x[k] for k in keys], [y[k] for k in keys]))
    return stats.stratified_paired(strata) if strata else None


def _against_at(root: Path) -> list[str]:
    """AT against CE and against KNN-BERT, pooled over seeds: context for the claims, not a claim of the paper
    (so not in its Holm family)."""
    ce, at = (lambda h: _under_attack(h / f"ce-{SEED_ATTACK}")), (lambda h: _under_attack(h / f"at-{SEED_ATTACK}"))
    lines = []
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for name, r in (("AT − CE, clean accuracy on the whole test split",
                         _pooled(root, dataset, lambda h: _correct(h / "ce"), lambda h: _correct(h / "at"))),
                        ("AT − CE under PWWS", _pooled(root, dataset, ce, at)),
                        ("KNN-BERT under the strongest attack − AT under PWWS", _pooled(root, dataset, at, _strongest))):
            if r is not None:
                lines.append(f"- {dataset}, {name}: {100 * r['difference']:+.1f} "
                             f"{stats.fmt_interval(r['low'], r['high'], spec='+.1f')} points over {r['strata']} "
                             f"seed{'s' if r['strata'] != 1 else ''} ({r['n']} (seed, example) pairs), "
                             f"McNemar p={r['p_value']:.3g} (pooled discordant pairs).")
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for here in _seed_dirs(root, dataset):
            m = (_read(here / "at") or {}).get("metrics")
            if m and "adversarial_training" in m:
                a = m["adversarial_training"]
                done = {k: sum(e.get(k, 0) for e in a["per_epoch"].values()) for k in ("attacked", "succeeded")}
                lines.append(f"- {dataset}, seed {here.name}, AT's training: {m['epochs_trained']} epochs "
                             f"({a['warmup_epochs']} clean{', until dev accuracy stopped improving' if m.get('converged') else ''}); "
                             f"{done['attacked']} examples attacked ({a['ratio']:g} of each batch, {a['query_budget']} "
                             f"queries each), {done['succeeded']} adversarial examples joined their batches.")
    if not lines:
        return []
    return ["", "Against adversarial training (AT, the baseline users compare robustness methods with), pooled over "
            "seeds as the claim below is (stratified bootstrap interval): a comparison beside the paper's claims, "
            "not one of them, so outside their Holm family.", "", *lines]


def _seed_claim(root: Path, dataset: str) -> stats.Claim | None:
    """KNN-BERT under the strongest attack vs CE under PWWS, pooled over the seeds where both ran (pairs
    resampled within each seed; McNemar on the pooled discordant pairs, the CMH test for matched pairs)."""
    r = _pooled(root, dataset, lambda h: _under_attack(h / f"ce-{SEED_ATTACK}"), _strongest)
    if r is None:
        return None
    return _claim(f"{dataset}, robustness under PWWS over {r['strata']} seed{'s' if r['strata'] != 1 else ''} (KNN-BERT "
                  "under the strongest of its own, the adaptive and the head's attack; CE under PWWS)",
                  r["difference"], r["low"], r["high"], r["p_value"], f"points over {r['n']} (seed, example) pairs")


def _worst_case(here: Path, attack: str) -> dict[int, bool] | None:
    """Per attacked example: KNN combined still right under its own attack (records of knn-<attack>) and on
    the head's adversarial example where the head's attack found one (knn-transfer-<attack>, keyed by the
    attack's example index): accuracy under the stronger of the two attacks, an adaptive attacker's view."""
    own = _under_attack(here / f"knn-{attack}")
    transfer = read_records(here / f"knn-transfer-{attack}")
    if not own or not transfer:
        return None
    fooled = {r["attack_index"] for r in transfer if r["prediction"] != r["label"]}
    return {i: ok and i not in fooled for i, ok in own.items()}


def _claim(name: str, difference: float, low: float, high: float, p: float, unit: str) -> stats.Claim:
    """The claim "KNN-BERT is higher" from a paired difference (KNN combined minus CE) and its 95 % interval."""
    return stats.Claim(name, p, difference,
                       f"{100 * difference:+.1f} {stats.fmt_interval(low, high, spec='+.1f')} {unit}")


def _paired(name: str, a: dict | None, b: dict | None) -> stats.Claim | None:
    """b vs a on the same examples: McNemar's exact p and a paired bootstrap interval of the difference."""
    if not a or not b or set(a) != set(b):
        return None
    keys = sorted(a)
    boot = stats.paired_bootstrap([float(b[k]) for k in keys], [float(a[k]) for k in keys])
    p = stats.mcnemar([a[k] for k in keys], [b[k] for k in keys])["p_value"]
    return _claim(name, boot["difference"], boot["low"], boot["high"], p, "points")


def claims(root: Path) -> list[stats.Claim]:
    """The paper's three claims per data set (accuracy rich-source and 16-shot, robustness per attack), each
    with the paired test on the runs above: the table's family."""
    out = []
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        rich, few = (layout.run(root, "knn", "setting", dataset=dataset, setting=s) for s in ("rich", "shots16"))
        out.append(_paired(f"{dataset}, rich-source accuracy", _correct(rich / "ce"), _correct(rich / "knn")))
        t = _seed_t(*((_read(few / m) or {}).get("metrics") for m in ("ce", "knn")))
        if t is not None and t["half_width"] is not None:
            out.append(_claim(f"{dataset}, 16-shot accuracy", t["mean"], t["mean"] - t["half_width"],
                              t["mean"] + t["half_width"], t["p_value"], f"points over {t['n']} seeds"))
        for attack, label in ATTACKS:
            worst = _worst_case(rich, attack)
            out.append(_paired(f"{dataset}, robustness under {label} ("
                               + ("the stronger of its own attack and the head's adversarial examples" if worst
                                  else "its own attack only: the head's transfer was not run") + ")",
                               _under_attack(rich / f"ce-{attack}"), worst or _under_attack(rich / f"knn-{attack}")))
        out.append(_seed_claim(root, dataset))
    return [c for c in out if c]


def _claims(root: Path) -> list[str]:
    family = stats.Family(claims(root))
    if not family.claims:
        return []
    return ["", "## The paper's claims, per data set", "",
            "KNN-BERT (KNN combined) is higher than CE, on the same examples or seeds: the difference KNN − CE in "
            "points with its 95 % interval (paired bootstrap over examples, McNemar's exact p; 16-shot: Student's t "
            "over seeds, paired t-test). " + family.note(), "", *family.lines()]


def _under_attack(run: Path) -> dict[int, bool] | None:
    """Per example: still right under the attack (a failed attack), from the attack's records."""
    records = read_records(run)
    return {r["index"]: r["status"] == "failed" for r in records} if records else None


def _pwws(m: dict | None) -> str:
    """Accuracy before -> under PWWS on the attacked sample (its Wilson interval): the sample's own clean
    accuracy, not the table's."""
    if m is None:
        return "–"
    if "accuracy_under_attack" not in m:
        return "?"
    n = m.get("examples")
    before = f"{100 * m['accuracy_before']:.0f} -> " if "accuracy_before" in m else ""
    interval = ""
    if isinstance(n, int) and n:
        interval = " " + stats.fmt_interval(*stats.wilson(round(m["accuracy_under_attack"] * n), n))
    return f"{before}{100 * m['accuracy_under_attack']:.1f}{interval} (n={n if n is not None else '?'})"


def main(argv: list[str]) -> None:
    write_table(argv, build, "results/knn")


if __name__ == "__main__":
    main(sys.argv[1:])
