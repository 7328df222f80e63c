"""Run directories: no silent overwrite, atomic writes, metrics.json with provenance."""

import datetime as dt
import hashlib
import json
import re

import pytest
from conftest import read_json

from advkit import results
from advkit.errors import UserError
from advkit.results import RunDir, atomic_write


def snapshot(folder):
    """{relative path: sha256} of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def finished_run(path, command="evaluate"):
    run = RunDir(path, command)
    run.create({"limit": 4})
    run.write_records([{"index": 0, "text": "好", "label": 1}])
    run.write_metrics({"accuracy": 0.5}, {"limit": 4}, seed=7, device="cpu")
    return run


def test_metrics_json_has_command_metrics_config_provenance(tmp_path):
    doc = finished_run(tmp_path / "run").write_metrics({"accuracy": 0.75, "examples": 4}, {"limit": 4, "seed": 7},
                                                       seed=7, device="cpu")
    on_disk = read_json(tmp_path / "run" / "metrics.json")
    assert on_disk == doc
    assert on_disk["command"] == "evaluate"
    assert on_disk["metrics"] == {"accuracy": 0.75, "examples": 4}
    assert on_disk["config"] == {"limit": 4, "seed": 7}
    prov = on_disk["provenance"]
    assert {"git_commit", "versions", "seed", "device", "start", "end"} <= set(prov)
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", prov["git_commit"])  # the tests run inside the git checkout
    assert {"python", "advkit", "torch", "transformers"} <= set(prov["versions"])
    assert (prov["seed"], prov["device"]) == (7, "cpu")
    start, end = dt.datetime.fromisoformat(prov["start"]), dt.datetime.fromisoformat(prov["end"])
    assert start.tzinfo is not None and start <= end
    assert results.read_metrics(tmp_path / "run") == on_disk
    assert read_json(tmp_path / "run" / "run.json")["command"] == "evaluate"


def test_records_are_json_lines(tmp_path):
    run = finished_run(tmp_path / "run")
    run.write_records([{"i": i, "text": f"例 {i}"} for i in range(3)])
    lines = (tmp_path / "run" / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"i": i, "text": f"例 {i}"} for i in range(3)]
    assert "例" in lines[0]  # readable, not \\u-escaped


def test_finished_run_is_not_overwritten(tmp_path):
    finished_run(tmp_path / "run")
    before = snapshot(tmp_path / "run")
    with pytest.raises(UserError, match=r"already holds a finished run; pass --overwrite"):
        RunDir(tmp_path / "run", "evaluate")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"already holds files; pass --overwrite"):
        RunDir(tmp_path / "other", "evaluate")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        RunDir(tmp_path / "afile", "evaluate")
    assert snapshot(tmp_path / "run") == before
    RunDir(tmp_path / "empty", "evaluate")  # absent or empty folders are fine
    (tmp_path / "empty").mkdir()
    RunDir(tmp_path / "empty", "evaluate").create({})


def test_overwrite_replaces_the_old_run(tmp_path):
    finished_run(tmp_path / "run")
    (tmp_path / "run" / "stale.png").write_bytes(b"old plot")
    run = RunDir(tmp_path / "run", "finetune", overwrite=True)
    assert (tmp_path / "run" / "metrics.json").is_file()  # nothing removed before create()
    run.create({"epochs": 1})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.json"]
    run.write_metrics({"eval_accuracy": 1.0}, {"epochs": 1}, seed=1, device="cpu")
    assert read_json(tmp_path / "run" / "metrics.json")["command"] == "finetune"


def test_resume_only_continues_the_same_command(tmp_path):
    finished_run(tmp_path / "run", command="evaluate")
    with pytest.raises(UserError, match="is a run of 'evaluate', not of 'finetune'"):
        RunDir(tmp_path / "run", "finetune", resume=True)
    with pytest.raises(UserError, match="holds no run to resume"):
        RunDir(tmp_path / "new", "evaluate", resume=True)


def test_cli_refuses_to_overwrite_a_finished_run(tmp_path, cli):
    finished_run(tmp_path / "run")
    before = snapshot(tmp_path / "run")
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    r = cli("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "4", "--out", tmp_path / "run")
    assert r.code == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: --out {tmp_path / 'run'}: already holds a finished run; "
                                             "pass --overwrite or choose another --out"]
    assert snapshot(tmp_path / "run") == before
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == stamps


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write(target, "first")
    atomic_write(target, "second ✓")
    assert target.read_text(encoding="utf-8") == "second ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with pytest.raises(TypeError):
        atomic_write(target, b"bytes are not text")  # fails half-way, after the temporary file exists
    assert target.read_text(encoding="utf-8") == "second ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_read_metrics_errors(tmp_path):
    with pytest.raises(UserError, match="no metrics.json"):
        results.read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        results.read_metrics(tmp_path)


def test_provenance_is_dirty_for_code_not_for_what_runs_write(tmp_path):
    """A table or benchmark run rewrites tracked files under results/ and bench/out/ as it goes: the runs after
    the first must still name a clean commit; a changed source file must not."""
    import subprocess

    from advkit.results import git_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    for name in ("advkit/code.py", "results/knn/metrics.json", "bench/out/shard.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "empty")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tree")
    clean = git_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", clean)
    (tmp_path / "results/knn/metrics.json").write_text("2\n")
    (tmp_path / "bench/out/shard.json").write_text("2\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "advkit/code.py").write_text("2\n")
    assert git_commit(tmp_path) == clean + "-dirty"
