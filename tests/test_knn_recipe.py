"""recipes/knn/table.sh resumes: a finished run is skipped, an attack run on another number of examples is
re-run, and so is the transfer run when the head's attack it reads has changed."""

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(path: Path, metrics: dict | None = None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps({"metrics": metrics or {}}))


def _table_sh(tmp_path: Path, root: Path) -> list[str]:
    """The advkit calls table.sh makes for sst2, CE and KNN, PWWS on 200 examples (a stub logs them)."""
    log = tmp_path / "calls.log"
    stub = tmp_path / "advkit"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    env = {**os.environ, "ADVKIT": str(stub), "PYTHON": "true", "ROOT": str(root), "DATASETS": "sst2",
           "METHODS": "ce knn", "ATTACK_LIMIT": "200", "ATTACKS": "pwws"}
    subprocess.run(["bash", str(REPO / "recipes" / "knn" / "table.sh")], env=env, check=True, cwd=REPO)
    return log.read_text().splitlines() if log.exists() else []


def _finished_fine_tunes(root: Path):
    rich, shots = root / "sst2" / "rich", root / "sst2" / "shots16"
    for run in ("ce", "knn", "knn-pretrained"):
        _run(rich / run)
        _run(shots / run)
    for m in ("ce", "knn"):
        (rich / m / "model").mkdir()
        (rich / m / "model" / "config.json").write_text("{}")
    return rich


def test_attack_on_another_n_is_rerun_and_the_transfer_with_it(tmp_path):
    root = tmp_path / "runs"
    rich = _finished_fine_tunes(root)
    _run(rich / "ce-pwws", {"examples": 10})  # an older, smaller run
    _run(rich / "knn-pwws", {"examples": 200})
    _run(rich / "knn-cls-pwws", {"examples": 200, "successes": 150})
    _run(rich / "knn-transfer-pwws", {"examples": 140})  # made from an older head attack

    calls = _table_sh(tmp_path, root)
    assert len(calls) == 2, calls
    assert calls[0].startswith("evaluate ") and f"--out {rich}/ce-pwws" in calls[0] and "--limit 200" in calls[0]
    assert f"--transfer-from {rich}/knn-cls-pwws" in calls[1] and f"--out {rich}/knn-transfer-pwws" in calls[1]


def test_a_finished_table_runs_nothing(tmp_path):
    root = tmp_path / "runs"
    rich = _finished_fine_tunes(root)
    for m in ("ce", "knn"):
        _run(rich / f"{m}-pwws", {"examples": 200})
    _run(rich / "knn-cls-pwws", {"examples": 200, "successes": 150})
    _run(rich / "knn-transfer-pwws", {"examples": 150})

    assert _table_sh(tmp_path, root) == []
