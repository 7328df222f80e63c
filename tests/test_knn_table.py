"""The KNN-BERT table script turns run directories into results/knn/table.md."""

import json

from advkit.finetune.table import build, main


def _write(path, metrics):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"command": "finetune", "metrics": metrics}))


def test_table_from_run_directories(tmp_path):
    base = {"train_examples": 1000, "eval_examples": 500, "eval_split": "test", "train_seconds": 60.0}
    for m, acc in (("ce", 0.80), ("scl", 0.81), ("moco", 0.79)):
        _write(tmp_path / "sst2" / "rich" / m, {**base, "eval_accuracy": acc, "accuracy_cls": acc})
    _write(tmp_path / "sst2" / "rich" / "knn", {**base, "train_examples": 900, "eval_accuracy": 0.83,
                                                "accuracy_cls": 0.82, "accuracy_knn": 0.8, "accuracy_combined": 0.83,
                                                "lambda_inf": 0.3})
    _write(tmp_path / "sst2" / "rich" / "knn-pwws", {"accuracy_before": 0.8, "accuracy_under_attack": 0.25,
                                                     "examples": 50})
    _write(tmp_path / "sst2" / "shots16" / "ce", {**base, "train_examples": 32, "eval_accuracy": 0.6,
                                                  "eval_accuracy_mean": 0.6, "eval_accuracy_std": 0.05})
    table = build(tmp_path)
    rich = next(line for line in table.splitlines() if "rich-source" in line)
    assert "| 80.0 | 81.0 | 79.0 | 82.0 | 80.0 | 83.0 | 0.3 | – / 80 -> 25.0 (n=50) |" in rich
    assert "KNN trains on 900" in rich
    few = next(line for line in table.splitlines() if "16-shot" in line)
    assert "60.0 ± 5.0" in few and few.count("–") >= 5
    main([str(tmp_path)])
    assert (tmp_path / "table.md").read_text() == table
