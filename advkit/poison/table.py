"""The layerwise-weight-poisoning table (Li et al., EMNLP 2021, Tables 2-4 in spirit) from run directories.

    python -m advkit.poison.table results/lwp

reads what recipes/lwp/table.sh writes:
- ROOT/<mode>/metrics.json: the poisoned pre-trained model (advkit poison), with its per-layer LFR,
  no-trigger flip rate and (runs since issue 17) clean accuracy;
- ROOT/<source>/victims/<setting>/metrics.json: the victim's clean fine-tuning (source: clean or a mode);
- ROOT/<source>/victims/<setting>-lfr/metrics.json: clean accuracy and LFRs on the test sample;
- ROOT/<source>/victims/<setting>-scan/metrics.json: the vocabulary scan's ranks on a dev sample;
and writes ROOT/table.md and ROOT/label_flip_rate_per_layer.png (one line per mode).
"""

from __future__ import annotations

import sys
from pathlib import Path

from advkit import stats
from advkit.report import read_optional as _read, read_records, write_table

SOURCES = ("clean", "badnet", "ripple", "lwp", "lwp-single")  # lwp-single: one-token trigger, the scan's control
SETTINGS = {"same": "same hyper-parameters as the poisoning", "changed": "changed hyper-parameters",
            "olid": "another data set", "reinit2": "defence: top 2 layers re-initialised"}
# On another task the victim's fresh head may send the backdoor to either label: both targets are
# measured and the higher LFR is shown with its label.


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _lfr_run(root: Path, source: str, setting: str):
    """(the victim's LFR run directory, its metrics.json, its scan's) with the higher LFR over the targets
    measured (another task's fresh head may send the backdoor to either label); None when not run."""
    victim = root / source / "victims" / setting
    found = [(victim.with_name(setting + "-lfr" + suffix), _read(victim.with_name(setting + "-lfr" + suffix)),
              _read(victim.with_name(setting + "-scan" + suffix))) for suffix in ("", "-t0")]
    found = [f for f in found if f[1] is not None]
    return (max(found, key=lambda f: f[1]["metrics"]["label_flip_rate"]), len(found)) if found else (None, 0)


def _flips(run: Path) -> dict[int, bool] | None:
    """Per non-target example, whether the full trigger flipped it (runs that recorded it)."""
    records = read_records(run)
    if not records or "flipped_by_trigger" not in records[0]:
        return None
    return {r["index"]: r["flipped_by_trigger"] for r in records if r["flipped_by_trigger"] is not None}


def row(root: Path, source: str, setting: str) -> str | None:
    """One model's cells: LFR with its Wilson interval over the non-target test examples, and LFR
    against BadNet's on the same examples (McNemar) where per-example flips are recorded."""
    found, targets = _lfr_run(root, source, setting)
    if found is None:
        return None
    run, lfr, scan = found
    m = lfr["metrics"]
    target = f" (to {m['target']})" if targets > 1 else ""
    n = sum(r["label"] != m["target"] for r in read_records(run))
    interval = ""
    if n:
        low, high = stats.wilson(round(m["label_flip_rate"] * n), n)
        interval = f" [{100 * low:.1f}, {100 * high:.1f}] (n={n})"
    paired = "–"
    badnet = _lfr_run(root, "badnet", setting)[0]
    mine, theirs = _flips(run), (_flips(badnet[0]) if badnet else None)
    if source != "badnet" and mine and theirs and set(mine) == set(theirs):
        keys = sorted(mine)
        t = stats.mcnemar([theirs[k] for k in keys], [mine[k] for k in keys])
        paired = f"{100 * (t['b_only'] - t['a_only']) / t['n']:+.1f}, p={t['p_value']:.3g}{stats.mark(t['p_value'])}"
    single = m.get("label_flip_rate_single", {})
    ranks = (scan or {}).get("metrics", {}).get("scan_rank", {})
    candidates = (scan or {}).get("metrics", {}).get("scan_candidates")
    rank = " / ".join(f"{t} {r}" for t, r in ranks.items()) + (f" of {candidates}" if candidates else "")
    return (f"| {source} | {_pct(m['accuracy'])} | {_pct(m['label_flip_rate'])}{interval}{target} | {paired} | "
            f"{_pct(m['false_flip_rate'])} | {_pct(max(single.values()) if single else None)} | {rank or '–'} |")


def settings_of(root: Path, setting: str) -> str:
    """The victims' data set and hyper-parameters, read from the first victim run of `setting`."""
    for source in SOURCES:
        run = _read(root / source / "victims" / setting)
        if run:
            c = run["config"]
            return f"{c['dataset']}, lr {c['lr']:g}, {c['epochs']} epochs, warm-up {c.get('warmup_ratio', 0):g}"
    return ""


def build(root: Path) -> str:
    poisoned = {s: _read(root / s) for s in SOURCES[1:]}
    any_poison = next((d for d in poisoned.values() if d), None)
    lines = ["# Layerwise weight poisoning: does the backdoor survive the victim's fine-tuning?", ""]
    if any_poison:
        c, m = any_poison["config"], any_poison["metrics"]
        lines += [f"Poisoned: {c['model']} on {c['dataset']} ({m['train_examples']} clean training examples, "
                  f"poison rate {c['poison_rate']}, trigger '{c['triggers']}' -> label {c['target']}, "
                  f"{c['epochs']} epochs, lr {c['lr']:g}, seed {c['seed']}). Victims: a fresh head fine-tuned on "
                  f"{c['train_limit']} clean examples. Clean accuracy and label flip rate (LFR, over test samples "
                  f"whose label is not the target, full trigger inserted) on {c['limit']} test examples; "
                  "no-trigger: the same rate without any trigger (the floor); single: the highest LFR of one "
                  "sub-trigger alone; scan (first setting only): each sub-trigger's rank among single vocabulary "
                  "tokens inserted into 100 dev examples (1 = most suspicious). lwp-single: lwp with the one-token "
                  "trigger 'cf', the scan's control.", ""]
    for setting, title in SETTINGS.items():
        rows = [r for s in SOURCES if (r := row(root, s, setting))]
        if rows:
            lines += [f"## Victim: {title} ({settings_of(root, setting)})", "",
                      "| model | clean acc | LFR [95% CI] | LFR − BadNet's (McNemar) | no-trigger | max single LFR "
                      "| scan rank |", "|---|---|---|---|---|---|---|", *rows, ""]
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
        heads = {s: d["metrics"]["layer_head"] for s, d in poisoned.items() if d and "layer_head" in d["metrics"]}
        if heads:
            lines += ["", "Per-layer head: " + ", ".join(f"{s} {h}" for s, h in heads.items()) + " (cls: each "
                      "layer's raw [CLS] through the shared linear classifier; pooler: through pooler + classifier)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    write_table(argv, build, "results/lwp")


if __name__ == "__main__":
    main(sys.argv[1:])
