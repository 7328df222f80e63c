"""The Chinese attack table (Li et al. 2020, arXiv 2012.14769, Table 2 in spirit) from run directories.

    python -m advkit.attack_zh.table results/zh

reads what recipes/zh/table.sh writes where advkit.layout puts it: each victim's fine-tuning, each data set's
judge (the classifier that judges label preservation) and each attack (attack-zh's records, per victim, data
set and generator, with and without the label check), and writes ROOT/table.md: one
section per victim and data set, rows = substitute generator, and paired tests of pieces and spans
against chars.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from advkit import layout, stats
from advkit.metrics import attack_metrics
from advkit.report import read_optional as _read, read_records, write_table

GENERATORS = ("pieces", "spans", "chars", "words", "glyph", "homophone")
# The label judge of each victim model, another family (the recipe trains and names it from the same file).
JUDGES = tomllib.loads((Path(__file__).resolve().parents[2] / "recipes" / "zh" / "judges.toml").read_text(
    encoding="utf-8"))["judge"]
# Pairs compared on the same examples. The claims (the table's Holm family) are the piece generators' (pieces, and
# spans: the same pieces ranked another way) against chars; the pair without the label check is a control.
COMPARED = (("pieces", "chars"), ("spans", "chars"), ("pieces, no label check", "chars, no label check"))
CLAIMED = {("pieces", "chars"), ("spans", "chars")}
VERDICTS = (stats.REPRODUCED, stats.CONTRADICTED, stats.UNDECIDED)
COLUMNS = (("accuracy_before", "acc before", 100, ".1f"), ("accuracy_under_attack", "acc after", 100, ".1f"),
           ("attack_success_rate", "success [95% CI]", 100, ".1f"), ("avg_queries", "queries", 1, ".0f"),
           ("perturbed_piece_ratio", "units changed %", 100, ".1f"),
           ("perturbed_char_ratio", "chars changed %", 100, ".1f"), ("fluency_ppl_before", "ppl before", 1, ".1f"),
           ("fluency_ppl_after", "ppl after", 1, ".1f"), ("similarity", "similarity", 1, ".3f"),
           ("label_preserving_success_rate", "label-preserving success [95% CI]", 100, ".1f"),
           ("rejected_per_example", "rejected / example", 1, ".0f"),
           ("seconds_per_example", "s / example", 1, ".1f"))
ROWS = tuple((g, "lexicon", g) for g in GENERATORS) + tuple((g, "none", f"{g}, no label check") for g in GENERATORS)


def _fmt(value, scale, spec) -> str:
    return "–" if value is None else format(value * scale, spec)


def _cell(m: dict, key: str, scale, spec) -> str:
    if key == "attack_success_rate":  # a proportion over the attacked examples: its Wilson interval and n
        return stats.fmt_rate(m["successes"], m["successes"] + m["failures"])
    if key == "label_preserving_success_rate" and key in m:  # successes the judge still labels right
        attacked = m["successes"] + m["failures"]
        return stats.fmt_rate(round(m[key] * attacked), attacked)
    return _fmt(m.get(key), scale, spec)


# Per-example quantities compared between two generators on the same examples (paired bootstrap): name, scale,
# value, over successes only, and the paper's claim for the piece generator (Li et al. 2020: its examples fool
# the victim, stay fluent and close in meaning): +1 a higher value, -1 a lower one, 0 reported but not claimed.
PAIRED = (("success %", 100, lambda r: float(r["status"] == "success"), False, 1, "succeeds more often"),
          ("chars changed %", 100, lambda r: r["changed_chars"] / r["chars"], True, 0, ""),
          ("ppl after / before", 1, lambda r: r["fluency_ppl_after"] / r["fluency_ppl_before"], True, -1,
           "reads more fluently (lower ppl after / before)"),
          ("similarity", 1, lambda r: r.get("similarity"), True, 1, "stays closer in meaning (higher similarity)"),
          ("label-preserving success %", 100, lambda r: _kept(r), False, 1,
           "succeeds more often with the true label kept (label-preserving success)"))


def _kept(r: dict) -> float | None:
    """1: a success whose adversarial text the judge still gives the true label; 0: not, or no success."""
    if r["status"] != "success":
        return 0.0
    return float(r["judge_after"] == r["label"]) if "judge_after" in r else None


def _diff(t: dict, scale) -> str:
    """A paired bootstrap's difference with its 95 % interval, scaled (points, or ratios to two decimals)."""
    spec = f"+.{2 if scale == 1 else 1}f"
    return f"{format(scale * t['difference'], spec)} {stats.fmt_interval(t['low'], t['high'], scale, spec)}"


def paired_lines(a_name: str, a: list[dict], b_name: str, b: list[dict], claims: list | None = None,
                 where: str = "") -> list[str]:
    """`a` vs `b` on the same examples: success over the examples both attacked, the quality measures
    over the examples both attacks fooled (the only ones where both have a value). `claims`, if given,
    receives (measure, advkit.stats.Claim) for each claimed measure (PAIRED), named after the section `where`."""
    a_by, b_by = ({r["index"]: r for r in rs if r["status"] != "skipped"} for rs in (a, b))
    both = sorted(set(a_by) & set(b_by))
    rows = []
    for name, scale, value, successes_only, sign, claim in PAIRED:
        keep = [i for i in both if not successes_only or a_by[i]["status"] == b_by[i]["status"] == "success"]
        keep = [i for i in keep if value(a_by[i]) is not None and value(b_by[i]) is not None]
        if not keep:
            rows.append(f"| {name} | 0 | – | – | – |")
            continue
        t = stats.paired_bootstrap([value(a_by[i]) for i in keep], [value(b_by[i]) for i in keep])
        if claims is not None and sign:
            claims.append((name, stats.Claim(f"{where}: {a_name} {claim} than {b_name}", t["p_value"],
                                             sign * t["difference"], f"{a_name} − {b_name} {_diff(t, scale)}"
                                             f"{' points' if scale == 100 else ''}, n={t['n']}, paired bootstrap")))
        rows.append(f"| {name} | {t['n']} | {_diff(t, scale)} | {t['p_value']:.4f}{stats.mark(t['p_value'])} | "
                    f"{'smaller' if t['difference'] < 0 else 'larger'} for {a_name} |")
    return [f"{a_name} vs {b_name}, paired on the same examples (difference {a_name} − {b_name}, 95% paired-"
            "bootstrap interval, 10,000 resamples, seed 0; * p < 0.05 before any correction: the claims' verdicts "
            "are Holm-adjusted, below):", "",
            "| measure | n | difference [95% CI] | p | direction |", "|---|---|---|---|---|"] + rows + [""]


def build(root: Path) -> str:
    judges = sorted({r["metrics"].get("fluency_judge", "pseudo-perplexity under albert-tiny-zh")
                     for r in map(_read, layout.runs(root, "zh", "attack")) if r})
    lines = ["# Chinese adversarial examples: substitute generators against fine-tuned victims", "",
             "Greedy BERT-Attack-style search (importance order, top-K candidates a position, a budget of changed "
             "units and of queries: see each section); only the substitute generator changes between rows. Success is "
             "over the examples the victim got right; changed units, characters, fluency (perplexity under one judge "
             f"for every generator: {'; '.join(judges) or '–'}) and similarity (m3e-small cosine) are over "
             "successful examples. Label-preserving success: the successes whose adversarial text an independent "
             "classifier still gives the true label, over the examples attacked: the section's judge, of another "
             "family than the victim (" + ", ".join(f"{j} judges {v}" for v, j in JUDGES.items())
             + "), fine-tuned apart on the data set and never attacked. "
             "pieces: the piece LM built by advkit build-piece-lm; spans: the same pieces ranked by albert-tiny-zh "
             "through one mask per character; chars: albert-tiny-zh's characters; "
             "words: jieba + HIT Cilin synonyms; glyph: TextAttack's morphonyms; homophone: pypinyin. "
             "Every generator runs with the label check (`--label-check lexicon`, advkit/attack_zh/label_check.py): a "
             "candidate that adds or removes a negation, or that moves the text towards another class by the "
             "training split's word statistics, is dropped before any query (rejected / example counts them)."
             + (" Rows 'no label check' attack the same examples without it: the difference in success is the "
                "share of 'successes' that changed the true label instead of fooling the victim."
                if any((p / "metrics.json").is_file() for p in layout.runs(root, "zh", "attack", check="none"))
                else ""), ""]
    claims: list[tuple[str, str, str, stats.Claim]] = []  # (a, b, measure, claim), one per section
    intro = len(lines)
    for section in layout.runs(root, "zh", "attacked"):
        here = layout.fields(root, "zh", "attacked", section)
        model, dataset = here["model"], here["dataset"]
        folder = lambda g, check: layout.run(root, "zh", "attack", model=model, dataset=dataset, generator=g,
                                             check=check)
        runs = {name: _read(folder(g, check)) for g, check, name in ROWS}
        if not any(runs.values()):
            continue
        victim = _read(layout.run(root, "zh", "victim", model=model, dataset=dataset))
        any_run = next(r for r in runs.values() if r)
        c = any_run["config"]
        about = (f"{any_run['metrics']['examples']} {dataset} dev examples (fixed sample, seed 0); top {c['top_k']} "
                 f"candidates, at most {c['max_perturb']:.0%} of the units changed, {c['max_queries']} queries"
                 + ("; the second sentence of each pair attacked, the first fixed" if c.get("attacked") == "second"
                    else ""))
        if victim:
            vm = victim["metrics"]
            about += (f"; victim fine-tuned on {vm['train_examples']} examples, {vm['eval_split']} accuracy "
                      f"{100 * vm['eval_accuracy']:.1f} on {vm['eval_examples']}")
            if "dev_accuracy_per_epoch" in vm:
                curve = ", ".join(f"{100 * a:.1f}" for a in vm["dev_accuracy_per_epoch"])
                about += (f", {vm['epochs_trained']} epochs ({vm['train_steps']} steps; held-out accuracy by "
                          f"epoch {curve}: {'converged' if vm['converged'] else 'still improving'})")
        judge = _read(layout.run(root, "zh", "judge", dataset=dataset, judge=JUDGES.get(model, "")))
        if judge:
            jm = judge["metrics"]
            about += (f"; judge ({judge['config']['model']}) fine-tuned on {jm['train_examples']} examples, {jm['eval_split']} accuracy "
                      f"{100 * jm['eval_accuracy']:.1f} on {jm['eval_examples']}")
        lines += [f"## {model} on {dataset}", "", about, "",
                  "| generator | " + " | ".join(c[1] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        records = {name: read_records(folder(g, check)) for g, check, name in ROWS if runs[name]}
        for g, rs in records.items():  # the numbers from the records, by the one attack-metrics function
            m = attack_metrics(rs)
            lines.append(f"| {g} | " + " | ".join(_cell(m, k, s, f) for k, _, s, f in COLUMNS) + " |")
        lines.append("")
        for a, b in COMPARED:
            if a in records and b in records:
                found = []
                lines += paired_lines(a, records[a], b, records[b], found if (a, b) in CLAIMED else None,
                                      f"{model} on {dataset}")
                claims += [(a, b, measure, claim) for measure, claim in found]
    family = stats.Family([c[3] for c in claims])
    if claims:
        summary = []
        for a, b in COMPARED:
            parts = []
            for measure, *_, claim in PAIRED:
                mine = [i for i, c in enumerate(claims) if c[:3] == (a, b, measure)]
                if mine:
                    parts.append(f"{claim} {' / '.join(str(family.count(v, mine)) for v in VERDICTS)}")
            if parts:
                summary.append(f"- {a} vs {b}, the sections where each claim is reproduced / contradicted / "
                               "undecided: " + "; ".join(parts) + ".")
        lines[intro:intro] = ["The claims over all sections, judged together (each under \"The claims\" at the "
                              "end with its raw and Holm-adjusted p; the paired tests under each section):", "",
                              *summary, ""]
        lines += ["## The claims", "",
                  "The piece generators (pieces; spans: the same pieces ranked by albert-tiny-zh) against chars, on "
                  "the same examples, per section, on the paper's claims: their examples fool the victim (success; "
                  "label-preserving success: with the true label kept, by the judge), read fluently (ppl after / "
                  "before) and stay close in meaning (similarity). chars changed % is reported above but claims "
                  "nothing (a piece swap changes several characters by design); a pair without the label check is a "
                  "control, outside the claims. "
                  + family.note(), "", *family.lines(), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    write_table(argv, build, "results/zh")


if __name__ == "__main__":
    main(sys.argv[1:])
