"""The layerwise-weight-poisoning table (Li et al., EMNLP 2021, Tables 2-4 in spirit) from run directories.

    python -m advkit.poison.table results/lwp

reads what recipes/lwp/table.sh writes, where advkit.layout puts it:
- poisoned: the poisoned pre-trained model (advkit poison), with its per-layer LFR, no-trigger flip rate
  and (runs since issue 17) clean accuracy;
- victim: the victim's clean fine-tuning (source: clean or a mode);
- lfr: clean accuracy and LFRs on the test sample;
- scan: the vocabulary scan's ranks on a dev sample;
- seed: lwp and its clean control poisoned again at other seeds;
- defence: an inference-time detector (ONION, STRIP, RAP) on a standard victim's clean and triggered test inputs;
and writes ROOT/table.md and ROOT/label_flip_rate_per_layer.png (one line per mode).
"""

from __future__ import annotations

import functools
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

from advkit import layout, stats
from advkit.report import read_optional as _read, read_records, run_hours, write_table

SOURCES = ("clean", "badnet", "ripple", "lwp", "lwp-single")  # lwp-single: one-token trigger, the scan's control
TOP_LAYER = ("badnet", "ripple")  # trained through the final output only: the backdoors a victim may wash out
# lwp's per-layer heads trained on the same clean examples for as many steps, no poison (--poison-rate 0): what
# each layer classifies and flips without a backdoor, the per-layer floor.
CONTROL = "lwp-clean"
SETTINGS = {"standard": "standard clean fine-tuning", "higher-lr": "higher learning rate, more epochs, warm-up",
            "olid": "another data set", "reinit2": "defence: top 2 layers re-initialised"}
# A layer is poisoned (issue 17) when the full trigger flips >= 90 % of non-target inputs through the shared
# head and, without it, it flips no more than 5 points above the clean model's floor.
POISONED_LFR, FLOOR_MARGIN = 0.9, 0.05
# lwp and its control at more seeds (other training samples and orders, the same test sample): one run's
# no-trigger rate moves with the seed, so the per-layer floor is judged on the mean paired by seed.
# A poisoned model trained again (layout "retrained": the same flags and seed, when the first run's weights
# were no longer at hand). CPU float sums are not bit-stable between runs, so it is a sibling, not a copy; the
# victims fine-tuned after it ended (provenance) start from it.
# On another task the victim's fresh head may send the backdoor to either label: the target on each victim
# setting's task is declared once, in its recipe (recipes/lwp/victim-<setting>.toml, [evaluate] target), for
# every model, and the table reads that target's runs (issue 31: no longer the higher LFR per model).
RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "lwp"
POISON_TARGET = 1  # the poisoning's target (recipes/lwp/poison.toml): where a setting declares none
# The inference-time detectors users run (OpenBackdoor's ONION, STRIP, RAP: advkit.poison.defences), each on the
# standard victims' test inputs, thresholded at 5 % false rejections of clean dev inputs.
DEFENCES = {"onion": "ONION", "strip": "STRIP", "rap": "RAP"}
EVADED = ("lwp-single", "badnet")  # what lwp's combination is claimed to be detected less often than


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


@functools.lru_cache(maxsize=None)  # read for every row and claim
def declared_target(setting: str) -> int:
    """The backdoor's target label on a victim setting's task, as its recipe declares it."""
    recipe = RECIPES / f"victim-{setting}.toml"
    if not recipe.is_file():
        return POISON_TARGET
    return tomllib.loads(recipe.read_text(encoding="utf-8")).get("evaluate", {}).get("target", POISON_TARGET)


def _lfr_run(root: Path, source: str, setting: str):
    """(the victim's LFR run directory, its metrics.json, its scan's) at the setting's declared target; None
    when not run."""
    t = declared_target(setting)
    at = lambda kind: layout.run(root, "lwp", kind, source=source, setting=setting, target=t)
    lfr = _read(at("lfr"))
    return (at("lfr"), lfr, _read(at("scan"))) if lfr else None


def _flips(records: list[dict], floor: bool = False) -> dict[int, bool] | None:
    """Per non-target example of an LFR run's records, whether the full trigger flipped it (runs that recorded
    it); floor=True: only the examples the victim classifies right without the trigger, the floor-corrected
    LFR's (the attack success rate as OpenBackdoor counts it), so that inputs the victim already sends to the
    target do not count as the trigger's work."""
    if not records or "flipped_by_trigger" not in records[0]:
        return None
    return {r["index"]: r["flipped_by_trigger"] for r in records
            if r["flipped_by_trigger"] is not None and (not floor or r["prediction"] == r["label"])}


class Rate(NamedTuple):
    metrics: dict  # the LFR run's (the higher-LFR target's)
    scan: dict | None  # its scan's run
    interval: tuple  # Wilson 95 % over the non-target test examples; (None, None) without records
    n: int
    flips: dict | None  # per non-target example, flipped by the trigger (`_flips`)
    floor_flips: dict | None  # the same over those the victim gets right without the trigger
    correct: dict | None  # per test example, right without the trigger (clean accuracy's records)

    def floor_corrected(self) -> tuple | None:
        """(rate, (low, high), n): the floor-corrected LFR with its Wilson interval; None without records."""
        if not self.floor_flips:
            return None
        k, n = sum(self.floor_flips.values()), len(self.floor_flips)
        return k / n, stats.wilson(k, n), n


def _rate(root: Path, source: str, setting: str) -> Rate | None:
    """A victim's LFR, read once for its row and the claims; None when not run."""
    found = _lfr_run(root, source, setting)
    if found is None:
        return None
    run, lfr, scan = found
    m, records = lfr["metrics"], read_records(run)
    n = sum(r["label"] != m["target"] for r in records)
    interval = stats.wilson(round(m["label_flip_rate"] * n), n) if n else (None, None)
    correct = {r["index"]: r["prediction"] == r["label"] for r in records} if records else None
    return Rate(m, scan, interval, n, _flips(records), _flips(records, floor=True), correct)


def _against(mine: Rate, theirs: Rate | None, floor: bool = False) -> dict | None:
    """McNemar of `mine`'s flips against `theirs` on the same non-target test examples (b_only: flipped by
    `mine` alone); floor=True: on the floor-corrected examples both victims classify right without the
    trigger. None where either lacks per-example flips or they read different examples."""
    a, b = (mine.floor_flips, theirs.floor_flips if theirs else None) if floor else \
        (mine.flips, theirs.flips if theirs else None)
    if not (a and b):
        return None
    if floor:  # each victim gets its own examples right: compare on those both do
        keys = sorted(set(a) & set(b))
    elif set(a) != set(b):
        return None
    else:
        keys = sorted(a)
    return stats.mcnemar([b[k] for k in keys], [a[k] for k in keys]) if keys else None


def row(root: Path, source: str, setting: str) -> str | None:
    """One model's cells: LFR with its Wilson interval over the non-target test examples, and LFR
    against BadNet's on the same examples (McNemar) where per-example flips are recorded."""
    found = _rate(root, source, setting)
    if found is None:
        return None
    m, scan, (low, high), n = found.metrics, found.scan, found.interval, found.n
    target = f" (to {m['target']})" if m["target"] != POISON_TARGET else ""
    interval = f" {stats.fmt_interval(low, high)} (n={n})" if n else ""
    paired = "–"
    t = _against(found, _rate(root, "badnet", setting)) if source != "badnet" else None
    if t:
        paired = f"{100 * (t['b_only'] - t['a_only']) / t['n']:+.1f}, p={t['p_value']:.3g}{stats.mark(t['p_value'])}"
    single = m.get("label_flip_rate_single", {})
    sm = (scan or {}).get("metrics", {})
    dev = f" of {scan['config']['limit']}" if scan and scan.get("config", {}).get("limit") else ""
    ranks, intervals, candidates = sm.get("scan_rank", {}), sm.get("scan_rank_interval", {}), sm.get("scan_candidates")
    rank = " / ".join(f"{t} {r:g}" + (f" {stats.fmt_interval(*intervals[t], scale=1, spec='g')}" if t in intervals
                                      else "")
                      for t, r in ranks.items()) + (f" of {candidates} (n={sm['scan_examples']}{dev})" if candidates else "")
    fc = found.floor_corrected()
    corrected = "–" if fc is None else f"{_pct(fc[0])} {stats.fmt_interval(*fc[1])} (n={fc[2]})"
    return (f"| {source} | {_pct(m['accuracy'])} | {_pct(m['label_flip_rate'])}{interval}{target} | {corrected} | "
            f"{paired} | "
            f"{_pct(m['false_flip_rate'])} | {_pct(max(single.values()) if single else None)} | {rank or '–'} |")


def survival_claims(root: Path) -> list[stats.Claim]:
    """Claim 1 (the paper's central one): where a victim's fine-tuning washes out a top-layer backdoor (the upper
    95 % bound of its floor-corrected LFR below POISONED_LFR), the layerwise one survives. Judged on the
    floor-corrected LFR, so that the victim's own errors toward the target do not count as a surviving
    backdoor: lwp against the baseline paired on the examples both victims classify right without the trigger
    (McNemar)."""
    out = []
    for setting, title in SETTINGS.items():
        mine = _rate(root, "lwp", setting)
        for base in TOP_LAYER:
            theirs = _rate(root, base, setting)
            fc = (mine.floor_corrected(), theirs.floor_corrected()) if mine and theirs else (None, None)
            if None in fc:
                continue
            (m, ci, _), (b, bci, _) = fc
            if bci[1] >= POISONED_LFR:  # not washed out: nothing to survive
                continue
            name = (f"{title}: {base} falls to {_pct(b)} {stats.fmt_interval(*bci)}, lwp is at {_pct(m)} "
                    f"{stats.fmt_interval(*ci)} (floor-corrected)")
            t = _against(mine, theirs, floor=True)
            if t:  # the same declared target: the same non-target examples
                diff = (t["b_only"] - t["a_only"]) / t["n"]
                out.append(stats.Claim(name, t["p_value"], diff, f"lwp − {base} {100 * diff:+.1f} points on the "
                                       f"{t['n']} examples both victims classify right, McNemar"))
    return out


def clean_accuracy_claims(root: Path) -> list[stats.Claim]:
    """Claim 3 (stealth): a poisoned model's victim keeps the clean model's victim's accuracy, per setting, on
    the same test examples (McNemar; paired bootstrap interval). Its effect is the difference, so a
    significant loss reads contradicted, and no significant difference undecided (no test proves equality)."""
    out = []
    for setting, title in SETTINGS.items():
        clean = _rate(root, "clean", setting)
        for source in SOURCES[1:]:
            mine = _rate(root, source, setting)
            if not (clean and mine and clean.correct and mine.correct and set(clean.correct) == set(mine.correct)):
                continue
            keys = sorted(clean.correct)
            a, b = [clean.correct[k] for k in keys], [mine.correct[k] for k in keys]
            boot = stats.paired_bootstrap([float(x) for x in b], [float(x) for x in a])
            p = stats.mcnemar(a, b)["p_value"]
            out.append(stats.Claim(
                f"{title}: {source}'s victim keeps clean accuracy ({_pct(sum(b) / len(b))} against the clean "
                f"victim's {_pct(sum(a) / len(a))})", p, boot["difference"],
                f"{100 * boot['difference']:+.1f} {stats.fmt_interval(boot['low'], boot['high'], spec='+.1f')} points "
                f"on the same {len(keys)} test examples, McNemar"))
    return out


def scan_claims(root: Path) -> list[stats.Claim]:
    """Claim 2: combinatorial sub-triggers evade a single-token vocabulary scan that finds a one-token trigger.
    lwp's most suspicious sub-trigger against lwp-single's trigger, by their bootstrap rank intervals (two
    dev samples, no paired test: no p-value)."""
    scans = {s: r.scan if (r := _rate(root, s, "standard")) else None for s in ("clean", "lwp", "lwp-single")}
    if not (scans["lwp"] and scans["lwp-single"]):
        return []

    def best(scan):  # the sub-trigger a defender would find first, with its interval and sample
        m = scan["metrics"]
        token = min(m["scan_rank"], key=m["scan_rank"].get)
        low, high = m.get("scan_rank_interval", {}).get(token, (m["scan_rank"][token],) * 2)
        return token, m["scan_rank"][token], low, high, f"n={m['scan_examples']}"

    lwp, single = best(scans["lwp"]), best(scans["lwp-single"])
    cell = lambda b: f"{b[0]} rank {b[1]:g} {stats.fmt_interval(b[2], b[3], scale=1, spec='g')} ({b[4]})"
    clean = f"; on the clean model {cell(best(scans['clean']))}" if scans["clean"] else ""
    return [stats.Claim(f"combinations evade the single-token scan ({scans['lwp']['metrics']['scan_candidates']} "
                        "tokens; a higher rank is less suspicious)", None,
                        evidence=f"lwp's most suspicious sub-trigger {cell(lwp)}, lwp-single's trigger {cell(single)}"
                                 f"{clean}", intervals=((lwp[2], lwp[3]), (single[2], single[3])))]


def _defence(root: Path, source: str, defence: str) -> tuple[dict, dict[int, bool]] | None:
    """A standard victim's detector run: (its defence metrics, per non-target test example whether its
    triggered twin is flagged); None when not run."""
    run = layout.run(root, "lwp", "defence", source=source, setting="standard", defence=defence)
    d = _read(run)
    if not d or "defence" not in d["metrics"]:
        return None
    m = d["metrics"]["defence"]
    return m, {r["index"]: r["suspicion_triggered"] > m["threshold"] for r in read_records(run)
               if r["suspicion_triggered"] is not None}


def defence_section(root: Path) -> list[str]:
    """Each detector on each standard victim: detection AUROC (triggered vs clean test inputs), and at the
    threshold set on clean dev inputs, the clean test inputs rejected, the triggered ones caught, and what is
    left of the backdoor (LFR) and of clean accuracy once rejected inputs count as lost."""
    rows = []
    for source in SOURCES:
        lfr = _rate(root, source, "standard")
        before = lfr.metrics if lfr else {}
        for defence, label in DEFENCES.items():
            found = _defence(root, source, defence)
            if found is None:
                continue
            d, flagged = found
            rows.append(f"| {source} | {label} | {d['auroc']:.3f} | {_pct(d['frr_test'])} | {_pct(d['detected'])} "
                        f"{stats.fmt_interval(*stats.wilson(sum(flagged.values()), len(flagged)))} | "
                        f"{_pct(before.get('label_flip_rate'))} -> {_pct(d['label_flip_rate_after'])} | "
                        f"{_pct(before.get('accuracy'))} -> {_pct(d['accuracy_after'])} |")
    if not rows:
        return []
    return ["## Inference-time defences (standard victims)", "",
            "Each detector fitted and thresholded on clean dev inputs of the victim it protects (at most 5 % of them "
            "rejected), then run on the test sample: AUROC of the triggered non-target inputs against the clean "
            "ones; rejected: clean test inputs flagged; detected: triggered inputs flagged (Wilson 95 %); LFR and "
            "clean accuracy before -> after, a rejected input counting as not flipped and as an error. ONION: the "
            "largest perplexity drop from removing one word, under the English word trigram LM "
            "(`--onion-lm word-trigram`: a causal LM as ONION's GPT-2, counted on the registered English training "
            "splits); STRIP: prediction entropy over copies with words swapped in from clean texts; RAP: the "
            "drop of the target's probability under a learnt rare-word perturbation.", "",
            "| model | defence | AUROC | rejected (clean) | detected (triggered) [95% CI] | LFR before -> after | "
            "clean acc before -> after |", "|---|---|---|---|---|---|---|", *rows, ""]


def evasion_claims(root: Path) -> list[stats.Claim]:
    """Claim 4: combinations evade inference-time detection. Against the detector that catches the most of
    lwp's triggered inputs (the strongest defender lwp meets), lwp's are caught less often than lwp-single's
    and badnet's, paired on the same non-target test examples (McNemar; paired bootstrap interval of
    caught(other) − caught(lwp))."""
    mine = {d: f for d in DEFENCES if (f := _defence(root, "lwp", d))}
    if not mine:
        return []
    strongest = max(mine, key=lambda d: (mine[d][0]["detected"], d))
    out = []
    for other in EVADED:
        theirs = _defence(root, other, strongest)
        if theirs is None or set(theirs[1]) != set(mine[strongest][1]):
            continue
        keys = sorted(theirs[1])
        a, b = [mine[strongest][1][k] for k in keys], [theirs[1][k] for k in keys]
        boot = stats.paired_bootstrap([float(x) for x in b], [float(x) for x in a])
        out.append(stats.Claim(
            f"lwp's combination evades {DEFENCES[strongest]} (the detector that catches most of lwp's triggered "
            f"inputs) more than {other}'s trigger (caught: lwp {_pct(sum(a) / len(a))}, {other} {_pct(sum(b) / len(b))})",
            stats.mcnemar(a, b)["p_value"], boot["difference"],
            f"{other} − lwp {100 * boot['difference']:+.1f} "
            f"{stats.fmt_interval(boot['low'], boot['high'], spec='+.1f')} points caught on the same {len(keys)} "
            "triggered test inputs, McNemar"))
    return out


def claim_section(root: Path) -> list[str]:
    """The paper's claims, judged as one family (advkit.stats.Family)."""
    survival, scan, accuracy = survival_claims(root), scan_claims(root), clean_accuracy_claims(root)
    evasion = evasion_claims(root)
    family = stats.Family(survival + scan + accuracy + evasion)
    lines = family.lines()
    return ["## The paper's claims", "", family.note(), "",
            "The layerwise backdoor survives where a top-layer one (badnet, ripple) fades (upper 95 % bound of its "
            f"floor-corrected LFR below {100 * POISONED_LFR:.0f} %):", "",
            *(lines[:len(survival)] or ["- no victim setting here washes a top-layer backdoor out: **undecided** "
                                        "(nothing to test)."]),
            *(["", "Combinations evade the single-token scan:", "", *lines[len(survival):len(survival) + len(scan)]]
              if scan else []),
            *(["", "A poisoned model's victim keeps the clean model's victim's clean accuracy (difference poisoned − "
               "clean):", "", *lines[len(survival) + len(scan):len(lines) - len(evasion)]] if accuracy else []),
            *(["", "Combinations evade inference-time detection (against the strongest detector lwp meets):", "",
               *lines[len(lines) - len(evasion):]] if evasion else []), ""]


def retrained(root: Path) -> list[str]:
    """Per re-trained poisoned model: its figures next to the first run's, and the victim settings from it."""
    lines = []
    for run in layout.runs(root, "lwp", "retrained"):
        again, first = _read(run), _read(layout.run(root, "lwp", "poisoned", source=run.name))
        if not (again and first):
            continue
        settings = [SETTINGS[s] for s in SETTINGS if (v := _read(layout.run(root, "lwp", "victim", source=run.name, setting=s)))
                    and v["provenance"]["start"] >= again["provenance"]["end"]]
        a, f = again["metrics"], first["metrics"]
        per = lambda k: ", ".join(f"{_pct(x)} ({_pct(y)})" for x, y in zip(a[k], f[k]))
        lines.append(f"- {run.name}, poisoned again at {again['provenance']['git_commit'][:7]} (the first run in "
                     f"brackets, {first['provenance']['git_commit'][:7]}): clean accuracy {_pct(a['clean_accuracy'])} "
                     f"({_pct(f['clean_accuracy'])}); per layer, LFR {per('label_flip_rate_per_layer')}; no-trigger "
                     f"{per('false_flip_rate_per_layer')}. Its victims: {'; '.join(settings) or 'none'}.")
    return ["Poisoned models trained again with the same flags and seed (CPU float sums differ between runs, "
            "so the weights do too), and the victim settings that start from them:", "", *lines, ""] if lines else []


def settings_of(root: Path, setting: str) -> str:
    """The victims' data set and hyper-parameters, read from the first victim run of `setting`."""
    for source in SOURCES:
        run = _read(layout.run(root, "lwp", "victim", source=source, setting=setting))
        if run:
            c = run["config"]
            return f"{c['dataset']}, lr {c['lr']:g}, {c['epochs']} epochs, warm-up {c.get('warmup_ratio', 0):g}"
    return ""


def clean_floor(root: Path) -> float | None:
    """The clean model's no-trigger flip rate: its victim's, in the first setting measured."""
    for setting in SETTINGS:
        found = _lfr_run(root, "clean", setting)
        if found:
            return found[1]["metrics"]["false_flip_rate"]
    return None


def poisoned_layers(metrics: dict, floor: float | list[float], accuracy: list[float] | None = None) -> list[int]:
    """The layers (1..L) that flip on the trigger and keep the clean floor (one, or one per layer) without it;
    given the control's per-layer accuracy, also classify clean text within FLOOR_MARGIN of it."""
    lfrs, ffrs = metrics["label_flip_rate_per_layer"], metrics["false_flip_rate_per_layer"]
    floors = floor if isinstance(floor, list) else [floor] * len(lfrs)
    accs, least = metrics["clean_accuracy_per_layer"], accuracy or [0.0] * len(lfrs)
    return [i + 1 for i, (lfr, ffr, f, acc, a) in enumerate(zip(lfrs, ffrs, floors, accs, least))
            if lfr >= POISONED_LFR and ffr <= f + FLOOR_MARGIN and acc >= a - FLOOR_MARGIN]


def _first(root: Path, kind: str) -> dict | None:
    """The first run of `kind` (victim, or scan at the setting's declared target) over the sources and settings."""
    for source in SOURCES:
        for setting in SETTINGS:
            run = _read(layout.run(root, "lwp", kind, source=source, setting=setting, target=declared_target(setting)))
            if run:
                return run
    return None


def seed_runs(root: Path, name: str) -> dict[int, dict]:
    """Seed -> metrics of `name` (lwp or its control): its own run, and its runs at other seeds."""
    runs = {}
    for run in [layout.run(root, "lwp", "poisoned", source=name), *layout.runs(root, "lwp", "seed", source=name)]:
        d = _read(run)
        if d and "false_flip_rate_per_layer" in d["metrics"]:
            runs[d["config"]["seed"]] = d["metrics"]
    return runs


def over_seeds(root: Path) -> list[str]:
    """Per layer, lwp's no-trigger flip rate against its clean control's, paired by seed (mean, 95 % t
    interval, paired t-test), with lwp's lowest LFR and both clean accuracies; empty below two shared seeds."""
    lwp, control = seed_runs(root, "lwp"), seed_runs(root, CONTROL)
    seeds = sorted(set(lwp) & set(control))
    if len(seeds) < 2:
        return []

    def per_seed(runs, key, layer):
        return [runs[s][key][layer] for s in seeds]

    def cell(values):
        mean, half = stats.t_interval(values)
        return f"{100 * mean:.1f} ± {100 * half:.1f} (" + ", ".join(_pct(v) for v in values) + ")"

    rows, kept, upper = [], [], []
    for layer in range(len(lwp[seeds[0]]["false_flip_rate_per_layer"])):
        mine, floor = (per_seed(r, "false_flip_rate_per_layer", layer) for r in (lwp, control))
        t = stats.paired_t(floor, mine)
        lfr = min(per_seed(lwp, "label_flip_rate_per_layer", layer))
        if lfr >= POISONED_LFR and t["mean"] <= FLOOR_MARGIN:
            kept.append(str(layer + 1))
            upper.append(t["mean"] + t["half_width"])
        rows.append(f"| {layer + 1} | {_pct(lfr)} | {cell(mine)} | {cell(floor)} | {100 * t['mean']:+.1f} "
                    f"{stats.fmt_interval(t['mean'] - t['half_width'], t['mean'] + t['half_width'], spec='+.1f')}, "
                    f"p={t['p_value']:.2g} | {cell(per_seed(lwp, 'clean_accuracy_per_layer', layer))} | "
                    f"{cell(per_seed(control, 'clean_accuracy_per_layer', layer))} |")
    return ["", f"### Per layer over seeds {', '.join(map(str, seeds))}: lwp against {CONTROL}", "",
            f"Each seed draws its own {lwp[seeds[0]]['train_examples']} training examples and order; the test "
            "sample is the same. Mean ± 95 % t half-width (per seed); the difference is paired by seed (paired t).", "",
            f"| layer | lwp LFR, lowest | lwp no-trigger | {CONTROL} no-trigger | difference [95% CI] | lwp clean acc "
            f"| {CONTROL} clean acc |", "|---|---|---|---|---|---|---|", *rows, "",
            f"Poisoned over seeds (LFR ≥ {100 * POISONED_LFR:.0f} % at every seed, mean no-trigger flip rate ≤ "
            f"{CONTROL}'s + {100 * FLOOR_MARGIN:.0f} points): layers {', '.join(kept) or 'none'}"
            # few seeds give wide intervals: say how large a lean they leave possible
            + (f"; their intervals reach up to {100 * max(upper):+.1f} points." if upper else ".")]


def build(root: Path) -> str:
    poisoned = {s: _read(layout.run(root, "lwp", "poisoned", source=s)) for s in (*SOURCES[1:], CONTROL)}
    any_poison = next((d for d in poisoned.values() if d), None)
    lines = ["# Layerwise weight poisoning: does the backdoor survive the victim's fine-tuning?", ""]
    if any_poison:
        c, m = any_poison["config"], any_poison["metrics"]
        # Each mode trains as long as it needs (lwp's lower layers take longer), so each names its own steps.
        steps = "steps: " + ", ".join(f"{s} {d['metrics']['train_steps']} ({d['config']['epochs']} epochs)"
                                      for s, d in poisoned.items() if d and s != CONTROL)
        victim, scan = _first(root, "victim"), _first(root, "scan")
        trained = (f"{victim['metrics']['train_examples']} clean training examples" if victim and
                   "train_examples" in victim["metrics"] else "clean data")
        scanned = ("–" if not scan else f"{scan['metrics']['scan_candidates']} single whole-word vocabulary tokens "
                   f"(the sub-triggers among them), each inserted alone into the non-target examples of a "
                   "dev sample (n of m: the non-target examples scanned of the run's m dev examples); average ranks "
                   "with ties split, 95 % bootstrap interval over the dev examples")
        lines += [f"Poisoned: {c['model']} on {c['dataset']} ({m['train_examples']} clean training examples, "
                  f"poison rate {c['poison_rate']}, trigger '{c['triggers']}' -> label {c['target']}, "
                  f"{steps}, lr {c['lr']:g}, seed {c['seed']}). "
                  f"Victims: a fresh head fine-tuned on {trained}. Clean accuracy and label flip rate (LFR, over "
                  f"test samples whose label is not the target, full trigger inserted) on {c['limit']} test "
                  "examples (on another task toward the label its recipe declares for every model, recipes/lwp/victim-"
                  "<setting>.toml, shown as 'to N'); floor-corrected: the LFR over the non-target examples the victim classifies right "
                  "without the trigger (the attack success rate as OpenBackdoor counts it; the claims use it); "
                  "no-trigger: the same rate without any trigger (the floor); single: the highest LFR "
                  f"of one sub-trigger alone; scan rank (first setting only; 1 = most suspicious) among {scanned}. "
                  "lwp-single: lwp with the one-token trigger 'cf', the scan's control.", ""]
    for setting, title in SETTINGS.items():
        rows = [r for s in SOURCES if (r := row(root, s, setting))]
        if rows:
            lines += [f"## Victim: {title} ({settings_of(root, setting)})", "",
                      "| model | clean acc | LFR [95% CI] | floor-corrected LFR [95% CI] | LFR − BadNet's (McNemar) "
                      "| no-trigger | max single LFR | scan rank |", "|---|---|---|---|---|---|---|---|", *rows, ""]
    lines += defence_section(root)
    lines += retrained(root)
    if any(_rate(root, "lwp", s) for s in SETTINGS):
        lines += claim_section(root)
    curves = {s: d["metrics"]["label_flip_rate_per_layer"] for s, d in poisoned.items() if d}
    if curves:
        from advkit.poison.metrics import plot_per_layer

        floors = {s: d["metrics"]["false_flip_rate_per_layer"] for s, d in poisoned.items()
                  if d and "false_flip_rate_per_layer" in d["metrics"]}
        # Runs from before issue 17 lack per-layer clean accuracy; their table and plot stay as they were.
        accuracy = {s: d["metrics"]["clean_accuracy_per_layer"] for s, d in poisoned.items()
                    if d and "clean_accuracy_per_layer" in d["metrics"]}
        plot_per_layer(curves, root / "label_flip_rate_per_layer.png", "LFR through the shared head, per layer "
                       "(the poisoned model, before the victim's fine-tuning)", no_trigger=floors,
                       accuracy=accuracy or None)
        lines += ["## Per layer, before fine-tuning", "", "![per-layer LFR](label_flip_rate_per_layer.png)", "",
                  "| mode | " + " | ".join(f"layer {i + 1}" for i in range(len(next(iter(curves.values()))))) + " |",
                  "|---|" + "---|" * len(next(iter(curves.values())))]
        lines += [f"| {s} | " + " | ".join(_pct(x) for x in v) + " |" for s, v in curves.items()]
        lines += [f"| {s}, no trigger | " + " | ".join(_pct(x) for x in v) + " |" for s, v in floors.items()]
        lines += [f"| {s}, clean accuracy | " + " | ".join(_pct(x) for x in v) + " |" for s, v in accuracy.items()]
        judged = {s: d for s, d in poisoned.items() if d and s != CONTROL and "clean_accuracy_per_layer" in d["metrics"]}

        def verdicts(floor, accuracy=None) -> str:
            return "; ".join(f"{s} {', '.join(map(str, poisoned_layers(d['metrics'], floor, accuracy))) or 'none'}"
                             for s, d in judged.items()) + "."
        floor = clean_floor(root)
        if floor is not None and judged:
            lines += ["", f"Poisoned layers (LFR ≥ {100 * POISONED_LFR:.0f} % and no-trigger flip rate ≤ the clean "
                      f"victim's floor {100 * floor:.1f} + {100 * FLOOR_MARGIN:.0f} points): " + verdicts(floor)]
        control = poisoned.get(CONTROL)
        if control and judged:
            c = control["metrics"]
            lines += ["", f"Against each layer's own floor (no-trigger flip rate ≤ {CONTROL}'s at that layer + "
                      f"{100 * FLOOR_MARGIN:.0f} points; {CONTROL}: lwp's heads trained on the same clean examples "
                      f"for {c['train_steps']} steps, no poison): " + verdicts(c["false_flip_rate_per_layer"]),
                      "", f"Poisoned and classifying (as above, and clean accuracy ≥ {CONTROL}'s at that layer − "
                      f"{100 * FLOOR_MARGIN:.0f} points): "
                      + verdicts(c["false_flip_rate_per_layer"], c["clean_accuracy_per_layer"])]
        lines += over_seeds(root)
        if any(s in poisoned and poisoned[s] for s in ("badnet", "ripple")):
            lines += ["", "badnet and ripple train the final output only (through the pooler): their per-layer rows "
                      "read each layer's raw [CLS] through a classifier never trained on it."]
        heads = {s: d["metrics"]["layer_head"] for s, d in poisoned.items() if d and "layer_head" in d["metrics"]}
        if heads:
            lines += ["", "Per-layer head: " + ", ".join(f"{s} {h}" for s, h in heads.items()) + " (cls: each "
                      "layer's raw [CLS] through the shared linear classifier; pooler: through pooler + classifier)."]
    runs, hours = run_hours(root)
    if runs:
        lines += ["", f"Every run of the table ({runs} run directories: poisoning, victims, measurements, scans) took "
                  f"{hours:.1f} h summed, start to end (provenance)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    write_table(argv, build, "results/lwp")


if __name__ == "__main__":
    main(sys.argv[1:])
