"""The KNN-BERT table (Li et al. 2021, arXiv 2110.02523, Tables 1-3 in spirit) from run directories.

    python -m advkit.finetune.table results/knn

reads ROOT/<dataset>/<setting>/<method>/metrics.json (setting: rich or shots16; method: ce, scl,
moco, knn) and, where present, ROOT/<dataset>/rich/<method>-pwws/metrics.json, and writes
ROOT/table.md. Few-shot cells are mean ± sample std over the seeds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from advkit.report import read_optional as _read, write_table

METHODS = ("ce", "scl", "moco", "knn")


def _cell(m: dict | None, key: str) -> str:
    if m is None:
        return "–"
    if f"{key}_mean" in m:
        return f"{100 * m[f'{key}_mean']:.1f} ± {100 * m[f'{key}_std']:.1f}"
    return f"{100 * m[key]:.1f}" if m.get(key) is not None else "–"


def build(root: Path) -> str:
    found = {json.loads(f.read_text(encoding="utf-8")).get("config", {}).get("model")
             for m in METHODS for f in root.glob(f"*/*/{m}/metrics.json")}
    lines = [f"# KNN-BERT and its baselines on {', '.join(sorted(m for m in found if m)) or 'minilm-l6'}", "",
             "Accuracy (%) on the evaluation split (see the sizes column). KNN: linear head (cls), "
             "KNN vote (knn), and their mix by lambda_inf (combined), lambda_inf chosen on dev "
             "(imdb: on 10 % of train held out), never on the reported split. Few-shot: 16 examples "
             "per class, mean ± sample std over seeds 13, 21, 42, 87, 100. Rich-source runs are "
             "subsampled to fit 2 hours on 2 CPU cores: the sizes are those of the runs. Under PWWS: accuracy "
             "(%) on a fixed sample of n test examples (seed 0), before -> after PWWS attacks the CE model and the KNN "
             "model's combined predictor of each data set's first row.", "",
             "| data set | setting | train / eval (split) | CE | SCL | MoCo | KNN cls | KNN knn | KNN combined "
             "| lambda_inf | under PWWS: CE / KNN combined |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    seconds = 0.0
    for dataset in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for setting in ("rich", "shots16"):
            runs = {m: _read(root / dataset / setting / m) for m in METHODS}
            if not any(runs.values()):
                continue
            seconds += sum(r["metrics"].get("train_seconds", 0) for r in runs.values() if r)
            ms = {k: (r["metrics"] if r else None) for k, r in runs.items()}
            any_m = next(m for m in ms.values() if m)
            knn = ms["knn"]
            sizes = f"{any_m['train_examples']} / {any_m['eval_examples']} ({any_m['eval_split']})"
            if knn is not None and knn["train_examples"] != any_m["train_examples"]:
                sizes += f"; KNN trains on {knn['train_examples']} (the rest chose lambda_inf)"
            lam = "–" if knn is None else (f"{knn['lambda_inf']}" if "lambda_inf_mean" not in knn
                                           else f"{knn['lambda_inf_mean']:.2f} ± {knn['lambda_inf_std']:.2f}")
            pwws = []
            for m in ("ce", "knn"):
                attacked = _read(root / dataset / setting / f"{m}-pwws")
                pwws.append("–" if attacked is None else _pwws(attacked["metrics"]))
            lines.append(f"| {dataset} | {'rich-source' if setting == 'rich' else '16-shot'} | {sizes} | "
                         f"{_cell(ms['ce'], 'eval_accuracy')} | {_cell(ms['scl'], 'eval_accuracy')} | "
                         f"{_cell(ms['moco'], 'eval_accuracy')} | {_cell(knn, 'accuracy_cls')} | "
                         f"{_cell(knn, 'accuracy_knn')} | {_cell(knn, 'accuracy_combined')} | {lam} | "
                         f"{' / '.join(pwws)} |")
    lines += ["", f"Training time summed over the runs: {seconds / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def _pwws(m: dict) -> str:
    """Accuracy before -> under PWWS on the attacked sample: the sample's own clean accuracy, not the table's."""
    if "accuracy_under_attack" not in m:
        return "?"
    before = f"{100 * m['accuracy_before']:.0f} -> " if "accuracy_before" in m else ""
    return f"{before}{100 * m['accuracy_under_attack']:.1f} (n={m.get('examples', '?')})"


def main(argv: list[str]) -> None:
    write_table(argv, build, "results/knn")


if __name__ == "__main__":
    main(sys.argv[1:])
