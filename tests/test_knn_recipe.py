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


def _table_sh(tmp_path: Path, root: Path, **extra: str) -> list[str]:
    """The advkit calls table.sh makes for sst2, CE and KNN, PWWS on 200 examples, no seeds part unless
    `extra` asks for it (a stub logs them)."""
    log = tmp_path / "calls.log"
    stub = tmp_path / "advkit"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    env = {**os.environ, "ADVKIT": str(stub), "PYTHON": "true", "ROOT": str(root), "DATASETS": "sst2",
           "METHODS": "ce knn", "ATTACK_LIMIT": "200", "ATTACKS": "pwws", "SEEDS": "", "AGNEWS_SEEDS": "",
           **extra}
    done = subprocess.run(["bash", str(REPO / "recipes" / "knn" / "table.sh")], env=env, check=True, cwd=REPO,
                          capture_output=True, text=True)
    (tmp_path / "stderr.log").write_text(done.stderr)
    return log.read_text().splitlines() if log.exists() else []


# what a seed's first pass asks for, in order (the transfer waits for the head's attack)
SEED_RUNS = ("ce", "knn", "at", "ce-pwws", "knn-pwws", "knn-adaptive-pwws", "knn-cls-pwws", "at-pwws")


def _outs(calls: list[str]) -> list[str]:
    return [c.split(" --out ")[1].split()[0] for c in calls]


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


def test_the_seeds_part_trains_each_seed_and_meets_three_attackers_then_skips_what_is_finished(tmp_path):
    root = tmp_path / "runs"
    calls = _table_sh(tmp_path, root, DATASETS="", SEEDS="2", SEED_LIMIT="50")
    here = root / "sst2" / "seeds" / "2"
    # the stub writes no run, so the transfer, which reads the head's attack, waits for the next pass
    assert _outs(calls) == [str(here / r) for r in SEED_RUNS]
    assert all("--seed 2" in c and "--save-model" in c and "--patience 1" in c for c in calls[:3])
    assert "--method at --epochs 3 " in calls[2]  # AT_EPOCHS' default
    goals = {out: c.split("--goal ")[1].split()[0] for out, c in zip(_outs(calls[3:8]), calls[3:8])}
    assert goals == {str(here / "ce-pwws"): "plain", str(here / "knn-pwws"): "plain",
                     str(here / "knn-adaptive-pwws"): "adaptive", str(here / "knn-cls-pwws"): "plain",
                     str(here / "at-pwws"): "plain"}
    assert f"--model {here}/knn/model " in calls[6] and "--limit 50" in calls[6]
    assert f"--model {here}/at " in calls[7]
    # finished: the three models, every attack on 50 examples; the head found 30: only the transfer is left
    for run in ("ce", "knn", "at"):
        _run(here / run)
    for run in ("ce-pwws", "knn-pwws", "knn-adaptive-pwws", "at-pwws"):
        _run(here / run, {"examples": 50})
    _run(here / "knn-cls-pwws", {"examples": 50, "successes": 30})
    (tmp_path / "calls.log").unlink()
    calls = _table_sh(tmp_path, root, DATASETS="", SEEDS="2", SEED_LIMIT="50")
    assert len(calls) == 1 and f"--model {here}/knn --transfer-from {here}/knn-cls-pwws" in calls[0]
    _run(here / "knn-transfer-pwws", {"examples": 30})
    (tmp_path / "calls.log").unlink()
    assert _table_sh(tmp_path, root, DATASETS="", SEEDS="2", SEED_LIMIT="50") == []


def test_an_interrupted_fine_tuning_goes_on_from_its_checkpoint(tmp_path):
    root = tmp_path / "runs"
    here = root / "sst2" / "seeds" / "2"
    (here / "knn").mkdir(parents=True)
    (here / "knn" / "checkpoint.pt").write_bytes(b"")  # knn stopped mid-training; ce and at never started
    calls = _table_sh(tmp_path, root, DATASETS="", SEEDS="2", SEED_LIMIT="50")[:3]
    assert [c.split()[2] for c in calls] == ["--overwrite", "--resume", "--overwrite"]


def test_agnews_seeds_joins_the_seeds_part_with_its_own_recipe(tmp_path):
    root = tmp_path / "runs"
    calls = _table_sh(tmp_path, root, DATASETS="", AGNEWS_SEEDS="1", SEED_LIMIT="50")
    here = root / "agnews" / "seeds" / "1"
    assert _outs(calls) == [str(here / r) for r in SEED_RUNS]
    assert all("--recipe recipes/knn/agnews.toml" in c and "--seed 1" in c for c in calls[:3])
    assert all("--dataset agnews" in c for c in calls[3:])


def test_a_lambda_inf_chosen_within_one_standard_error_gets_its_vote_attacked_alone(tmp_path):
    import sys

    root = tmp_path / "runs"
    here = root / "sst2" / "seeds" / "1"
    selection = {"lambda_inf_selected_on": "dev (500 of 872 examples)", "selection_accuracy": {"0.0": 0.866,
                 "0.5": 0.86, "1.0": 0.866}}
    for run in ("ce", "at"):
        _run(here / run)
    _run(here / "knn", {"lambda_inf": 0.0, **selection})
    for run in ("ce-pwws", "knn-pwws", "knn-adaptive-pwws", "at-pwws"):
        _run(here / run, {"examples": 50})
    _run(here / "knn-cls-pwws", {"examples": 50, "successes": 0})
    assert _table_sh(tmp_path, root, DATASETS="", SEEDS="1", SEED_LIMIT="50", PYTHON=sys.executable,
                     PYTHONPATH=str(REPO)) == []  # no weights kept: nothing to attack, and the recipe says so once
    said = (tmp_path / "stderr.log").read_text().splitlines()
    assert [line for line in said if "flagged" in line] == [
        f"table-knn: {here}/knn: lambda_inf is flagged but the run kept no weights, so its vote is not attacked alone "
        "(train it again with --save-model)"]
    (here / "knn" / "model").mkdir()
    (here / "knn" / "model" / "config.json").write_text("{}")
    calls = _table_sh(tmp_path, root, DATASETS="", SEEDS="1", SEED_LIMIT="50", PYTHON=sys.executable,
                      PYTHONPATH=str(REPO))
    assert len(calls) == 2 and all("--lambda-inf 1 " in c for c in calls)
    assert f"--goal plain --max-length 128 --out {here}/knn-vote-pwws" in calls[0]
    assert f"--goal adaptive --max-length 128 --out {here}/knn-vote-adaptive-pwws" in calls[1]
    # a firm choice (a margin of 4 points on 500 examples, over one standard error) or a vote already alone:
    for firm in ({"lambda_inf": 0.0, **selection, "selection_accuracy": {"0.0": 0.9, "1.0": 0.86}},
                 {"lambda_inf": 1.0, **selection}):
        _run(here / "knn", firm)
        (tmp_path / "calls.log").unlink(missing_ok=True)
        assert _table_sh(tmp_path, root, DATASETS="", SEEDS="1", SEED_LIMIT="50", PYTHON=sys.executable,
                         PYTHONPATH=str(REPO)) == []
