"""Tables, plots and report cards, made from run directories (metrics.json, records.jsonl).

Nothing here runs a model: every number comes from files a command wrote, so tables
for the README and papers can be rebuilt at any time (lm-eval's habit).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from advkit.errors import UserError
from advkit import results
from advkit.metrics import perturbation
from advkit.results import atomic_write, read_metrics


def read_optional(run: Path) -> dict | None:
    """metrics.json of a run directory, or None when the run is missing or unfinished (table builders)."""
    try:
        return json.loads((Path(run) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def run_hours(root: Path) -> tuple[int, float]:
    """(run directories under root, their wall time summed in hours) from each metrics.json's provenance
    start and end; a multi-seed run's seed-S folders are inside their parent's time and not counted again."""
    n, seconds = 0, 0.0
    for f in root.rglob("metrics.json"):
        if any(part.startswith("seed-") for part in f.relative_to(root).parts):
            continue
        p = json.loads(f.read_text(encoding="utf-8")).get("provenance", {})
        if "start" in p and "end" in p:
            n += 1
            seconds += (datetime.fromisoformat(p["end"]) - datetime.fromisoformat(p["start"])).total_seconds()
    return n, seconds / 3600


def write_table(argv: list[str], build, default_root: str) -> None:
    """`python -m advkit.<method>.table [ROOT]`: ROOT/table.md from the runs under ROOT."""
    import sys

    root = Path(argv[0] if argv else default_root)
    if not root.is_dir():  # bad input: one line and exit code 2, like every advkit command
        print(f"error: {root}: no such folder of runs", file=sys.stderr)
        sys.exit(2)
    atomic_write(root / "table.md", build(root))
    print(root / "table.md")


def lookup(doc: dict, key: str):
    """A dotted key into metrics.json; a bare name is looked up in metrics, then config."""
    if "." not in key:
        for section in ("metrics", "config"):
            if key in doc.get(section, {}):
                return doc[section][key]
        return doc.get(key)
    value = doc
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)[:40]
    return str(value)


def write_text(path: Path, text: str) -> None:
    """`advkit table --out`: the table written atomically; a missing folder is a user error."""
    try:
        atomic_write(path, text)
    except OSError as e:  # a missing folder, or a file where a folder should be
        raise UserError(f"--out {path}: cannot write: {e.strerror}") from None


def table(runs: list[str], rows: str, cols: str, value: str | None = None, latex: bool = False) -> str:
    """Markdown (or LaTeX) table from run directories.

    With `value`: rows and columns are the values of two keys, cells the value metric.
    Without: one row per run labelled by `rows`, one column per metric named in `cols` (comma list).
    """
    docs = [(r, read_metrics(r)) for r in runs]
    if rows == "run":  # the run folder's name
        docs = [(r, {**d, "run": Path(r).name}) for r, d in docs]
    if value:
        row_keys = list(dict.fromkeys(fmt(lookup(d, rows)) for _, d in docs))
        col_keys = list(dict.fromkeys(fmt(lookup(d, cols)) for _, d in docs))
        cells = {(fmt(lookup(d, rows)), fmt(lookup(d, cols))): fmt(lookup(d, value)) for _, d in docs}
        header = [rows] + col_keys
        body = [[r] + [cells.get((r, c), "–") for c in col_keys] for r in row_keys]
    else:
        metrics = [c.strip() for c in cols.split(",") if c.strip()]
        header = [rows] + metrics
        body = [[fmt(lookup(d, rows))] + [fmt(lookup(d, m)) for m in metrics] for _, d in docs]
    if latex:
        lines = ["\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
                 " & ".join(_tex(h) for h in header) + " \\\\", "\\midrule"]
        lines += [" & ".join(_tex(c) for c in row) + " \\\\" for row in body]
        return "\n".join(lines + ["\\bottomrule", "\\end{tabular}"]) + "\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"


def _tex(s: str) -> str:
    return str(s).replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def robustness_bars(rows: list[tuple[str, float, float, int]], path: Path, title: str) -> Path:
    """Accuracy before and under each attack, one pair of bars per attack: rows of (attack, accuracy
    before, accuracy under attack, examples), each bar with its Wilson 95 % interval."""
    fig = robustness_figure(rows, title)
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def robustness_figure(rows: list[tuple[str, float, float, int]], title: str):
    """The figure of robustness_bars, left open (tests read its error bars)."""
    from advkit.stats import wilson

    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(rows) + 2), 3.6))
    xs = range(len(rows))
    for shift, column, label, color in ((-0.2, 1, "clean accuracy", "#4c72b0"),
                                        (0.2, 2, "accuracy under attack", "#dd8452")):
        rates = [r[column] for r in rows]
        # the counts behind each rate: both are shares of the same n examples
        bounds = [wilson(round(rate * r[3]), r[3]) if r[3] else (rate, rate) for rate, r in zip(rates, rows)]
        errors = [[rate - low for rate, (low, _) in zip(rates, bounds)],
                  [high - rate for rate, (_, high) in zip(rates, bounds)]]
        ax.bar([x + shift for x in xs], rates, 0.4, label=label, color=color, yerr=errors, capsize=3,
               error_kw={"elinewidth": 1, "ecolor": "#333333"})
        for x, rate, (_, high) in zip(xs, rates, bounds):
            ax.text(x + shift, high + 0.015, f"{100 * rate:.1f}", ha="center", fontsize=8)  # as card.md: %
    ax.set_xticks(list(xs), [f"{r[0]}\n(n={r[3]})" if r[3] else r[0] for r in rows])
    ax.set_ylim(0, 1.15)
    ax.yaxis.set_major_formatter(lambda y, _: f"{100 * y:.0f}")
    ax.set_ylabel("accuracy, % (Wilson 95 % interval)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def perturbation_histogram(series: dict[str, list[float]], path: Path, title: str, unit: str = "words") -> Path:
    """Share of words (or characters) changed in each successful adversarial example, per attack."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = [i / 20 for i in range(21)]
    for name, values in series.items():
        if values:
            ax.hist(values, bins=bins, histtype="step", linewidth=1.8, label=f"{name} (n={len(values)})")
    ax.set_xlabel(f"share of {unit} changed (successful attacks)")
    ax.set_ylabel("examples")
    ax.set_title(title, fontsize=9)
    if any(series.values()):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no successful attack", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def under_attack(metrics: dict) -> float | None:
    """Accuracy under attack: evaluate's name, or attack-zh's accuracy_after."""
    return metrics.get("accuracy_under_attack", metrics.get("accuracy_after"))


def attack_name(run, metrics: dict) -> str:
    if metrics.get("attack"):
        return metrics["attack"]
    return f"zh-{metrics['substitutes']}" if "substitutes" in metrics else Path(run).name


def read_records(run: Path) -> list[dict]:
    return results.read_records(Path(run) / "records.jsonl")[0]


def attack_rows(runs: list[Path]) -> list[tuple[str, float, float, int]]:
    """(attack, accuracy before, accuracy under attack, examples) per run that measured them."""
    rows = []
    for run in runs:
        m = read_metrics(run)["metrics"]
        if under_attack(m) is not None:
            rows.append((attack_name(run, m), m["accuracy_before"], under_attack(m), m.get("examples")))
    return rows


def report(runs: list[str], out: str | Path) -> Path:
    """A Markdown report over any set of runs: a metrics table per command, and plots."""
    out = Path(out)
    docs = [(Path(r), read_metrics(r)) for r in runs]  # every run is read before --out is made
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder should be, or no permission
        raise UserError(f"--out {out}: cannot create: {e.strerror}") from None
    lines = ["# advkit report", ""]
    def kind(doc):  # attack runs and clean runs of evaluate have different metrics
        return doc["command"] + (" (attacks)" if "accuracy_under_attack" in doc["metrics"] else "")

    for title in dict.fromkeys(kind(d) for _, d in docs):
        group = [(r, d) for r, d in docs if kind(d) == title]
        names = dict.fromkeys(k for _, d in group for k, v in d["metrics"].items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool))
        lines += [f"## {title}", "", table([str(r) for r, _ in group], "run", ",".join(list(names)[:8])), ""]
    attacked = [(r, d) for r, d in docs if under_attack(d["metrics"]) is not None]
    if attacked:
        robustness_bars(attack_rows([r for r, _ in attacked]), out / "robustness.png", "accuracy before and under attack")
        units = {"characters" if "perturbed_char_ratio" in d["metrics"] else "words" for _, d in attacked}
        changed = {attack_name(r, d["metrics"]): [perturbation(x) for x in read_records(r) if x.get("status") == "success"]
                   for r, d in attacked}
        perturbation_histogram(changed, out / "perturbation.png", "how much each attack changes",
                               unit=" or ".join(sorted(units)))
        lines += ["## Robustness", "", "![robustness](robustness.png)", "", "![perturbation](perturbation.png)", ""]
    atomic_write(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"
