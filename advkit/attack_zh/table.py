"""The Chinese attack table (Li et al. 2020, arXiv 2012.14769, Table 2 in spirit) from run directories.

    python -m advkit.attack_zh.table results/zh

reads what recipes/zh/table.sh writes: ROOT/victims/<model>/<dataset>/metrics.json (the victim's
fine-tuning) and ROOT/attacks/<model>/<dataset>/<generator>/metrics.json (attack-zh), and writes
ROOT/table.md: one section per victim and data set, rows = substitute generator.
"""

from __future__ import annotations

import sys
from pathlib import Path

from advkit.metrics import attack_metrics
from advkit.report import read_optional as _read, read_records, write_table

GENERATORS = ("pieces", "chars", "words", "glyph", "homophone")
COLUMNS = (("accuracy_before", "acc before", 100, ".1f"), ("accuracy_under_attack", "acc after", 100, ".1f"),
           ("attack_success_rate", "success", 100, ".1f"), ("avg_queries", "queries", 1, ".0f"),
           ("perturbed_piece_ratio", "units changed %", 100, ".1f"),
           ("perturbed_char_ratio", "chars changed %", 100, ".1f"), ("fluency_ppl_before", "PPPL before", 1, ".1f"),
           ("fluency_ppl_after", "PPPL after", 1, ".1f"), ("similarity", "similarity", 1, ".3f"),
           ("rejected_per_example", "rejected / example", 1, ".0f"),
           ("seconds_per_example", "s / example", 1, ".1f"))
ROWS = tuple((g, g) for g in GENERATORS) + tuple((f"{g}-nocheck", f"{g}, no label check") for g in GENERATORS)


def _fmt(value, scale, spec) -> str:
    return "–" if value is None else format(value * scale, spec)


def build(root: Path) -> str:
    lines = ["# Chinese adversarial examples: substitute generators against fine-tuned victims", "",
             "Greedy BERT-Attack-style search (importance order, top-K candidates a position, a budget of changed "
             "units and of queries: see each section); only the substitute generator changes between rows. Success is "
             "over the examples the victim got right; changed units, characters, fluency (pseudo-perplexity "
             "under albert-tiny-zh) and similarity (m3e-small cosine) are over successful examples. "
             "pieces: the piece LM built by advkit build-piece-lm; chars: albert-tiny-zh's characters; "
             "words: jieba + HIT Cilin synonyms; glyph: TextAttack's morphonyms; homophone: pypinyin. "
             "Every generator runs with the label check (`--label-check lexicon`, advkit/attack_zh/label_check.py): a "
             "candidate that adds or removes a negation, or that moves the text towards another class by the "
             "training split's word statistics, is dropped before any query (rejected / example counts them). "
             "Rows 'no label check' attack the same examples without it: the difference in success is the share "
             "of 'successes' that changed the true label instead of fooling the victim.", ""]
    attacks = root / "attacks"
    for model_dir in sorted(p for p in attacks.iterdir() if p.is_dir()) if attacks.is_dir() else []:
        for ds_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            runs = {name: _read(ds_dir / folder) for folder, name in ROWS}
            if not any(runs.values()):
                continue
            victim = _read(root / "victims" / model_dir.name / ds_dir.name)
            any_run = next(r for r in runs.values() if r)
            c = any_run["config"]
            about = (f"{any_run['metrics']['examples']} {ds_dir.name} dev examples (fixed sample, seed 0); top {c['top_k']} "
                     f"candidates, at most {c['max_perturb']:.0%} of the units changed, {c['max_queries']} queries")
            if victim:
                vm = victim["metrics"]
                about += (f"; victim fine-tuned on {vm['train_examples']} examples, {vm['eval_split']} accuracy "
                          f"{100 * vm['eval_accuracy']:.1f} on {vm['eval_examples']}")
            lines += [f"## {model_dir.name} on {ds_dir.name}", "", about, "",
                      "| generator | " + " | ".join(c[1] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
            for g, r in runs.items():
                if r:  # the numbers from the records, by the one attack-metrics function
                    m = attack_metrics(read_records(ds_dir / next(f for f, n in ROWS if n == g)))
                    lines.append(f"| {g} | " + " | ".join(_fmt(m.get(k), s, f) for k, _, s, f in COLUMNS) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    write_table(argv, build, "results/zh")


if __name__ == "__main__":
    main(sys.argv[1:])
