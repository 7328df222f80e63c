"""The Chinese attack table script turns run directories into results/zh/table.md."""

import json

from advkit.attack_zh.table import build


def _write(path, metrics, config=None):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"metrics": metrics, "config": config or {}}))


def test_zh_table_rows_with_and_without_the_label_check(tmp_path):
    config = {"top_k": 48, "max_perturb": 0.4, "max_queries": 2000}
    base = {"examples": 40, "accuracy_before": 0.75, "avg_queries": 200.0, "seconds_per_example": 1.2}
    runs = tmp_path / "attacks" / "albert-tiny-zh" / "chnsenticorp"
    _write(runs / "pieces", {**base, "attack_success_rate": 0.6, "rejected_per_example": 140.4}, config)
    _write(runs / "pieces-nocheck", {**base, "attack_success_rate": 0.95, "rejected_per_example": 0.0}, config)
    _write(runs / "chars", {**base, "attack_success_rate": 0.7, "rejected_per_example": 80.0}, config)
    _write(tmp_path / "victims" / "albert-tiny-zh" / "chnsenticorp",
           {"train_examples": 3000, "eval_split": "dev", "eval_accuracy": 0.764, "eval_examples": 1000})

    table = build(tmp_path)
    assert "## albert-tiny-zh on chnsenticorp" in table and "dev accuracy 76.4 on 1000" in table
    rows = [line for line in table.splitlines() if line.startswith("| pieces") or line.startswith("| chars")]
    assert [r.split(" | ")[0] for r in rows] == ["| pieces", "| chars", "| pieces, no label check"]
    assert "| 60.0 |" in rows[0] and "| 140 |" in rows[0] and "| 95.0 |" in rows[2]
    assert "| words" not in table  # no run, no row
