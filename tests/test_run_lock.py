"""A run directory in use is refused: the live run holds OUT/.advkit.lock (pid, host); a second run into
it ends with one line and exit 2; a dead holder's lock is taken over by --resume or --overwrite."""

import json
import os
import platform
import subprocess
import sys
import time

import pytest
from conftest import REPO, advkit, read_json

from advkit.errors import UserError
from advkit.results import LOCK_FILE, RunDir, alive

FINETUNE = ["finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "3000", "--limit", "16",
            "--epochs", "2", "--batch-size", "8", "--no-save-model", "--quiet"]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer names a process
    return proc.pid


def test_alive_tells_a_running_process_from_a_dead_one():
    here = platform.node()
    assert alive({"pid": os.getpid(), "host": here})
    assert not alive({"pid": dead_pid(), "host": here})
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(1.0)  # exited, not yet reaped: its pid exists, the process does not
    try:
        assert not alive({"pid": zombie.pid, "host": here})
    finally:
        zombie.wait()
    assert alive({"pid": dead_pid(), "host": here + "-elsewhere"})  # another host: cannot tell, so in use


@pytest.mark.shared_data("sst2")
def test_a_second_run_into_a_live_runs_out_is_refused(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "advkit.cli", *FINETUNE, "--out", str(out)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # the lock appears once the first run has checked its inputs and made --out
            if (out / LOCK_FILE).is_file() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the second could start: make it longer"
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == first.pid and holder["host"] == platform.node() and holder["command"] == "finetune"
        before = sorted(p.name for p in out.iterdir())
        for extra in ([], ["--overwrite"], ["--resume"]):
            r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "4", "--out", out,
                       *extra)
            assert r.code == 2, (extra, r.stderr)
            assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: --out {out}: in use by a running "
                                                                       f"'finetune' (pid {first.pid}")
        assert sorted(p.name for p in out.iterdir()) == before  # the second run touched nothing
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert read_json(out / "metrics.json")["command"] == "finetune"  # the first run's work is whole
    assert not (out / LOCK_FILE).exists()  # released when it ended


def test_two_runs_that_both_found_the_folder_free_cannot_both_create_it(tmp_path):
    """The race the first check cannot see: both runs checked --out before either made it."""
    out = tmp_path / "run"
    a, b = RunDir(out, "evaluate", lock=True), RunDir(out, "evaluate", lock=True)
    a.create({"x": 1})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # the holder is another live process, as when two commands race
        lock = json.loads((out / LOCK_FILE).read_text())
        (out / LOCK_FILE).write_text(json.dumps({**lock, "pid": other.pid}))
        with pytest.raises(UserError, match="in use by a running 'evaluate'"):
            b.create({"x": 2})
    finally:
        other.kill()
        other.wait()
    assert read_json(out / "run.json")["config"] == {"x": 1}  # the first run's marker stands
    # that holder is dead now: a run that starts while nothing is written there still finds the folder taken
    (out / LOCK_FILE).unlink()
    with pytest.raises(UserError, match="another run wrote there"):
        b.create({"x": 2})
    assert read_json(out / "run.json")["config"] == {"x": 1}


@pytest.mark.shared_data("sst2")
@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_a_dead_runs_lock_is_taken_over_by_resume_or_overwrite(tmp_path, flag):
    out = tmp_path / "run"
    args = ["evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "dev", "--limit", "6",
            "--attack", "deepwordbug", "--quiet", "--out", out]
    r = advkit(*args)
    assert r.code == 0, r.stderr
    (out / "metrics.json").unlink()  # as if killed before the end, its lock left behind
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": platform.node(), "command": "evaluate",
                                             "start": "then"}))
    r = advkit(*args)
    assert r.code == 2 and "pass --overwrite" in r.stderr  # no flag: the dead run's files are kept
    r = advkit(*args, flag)
    assert r.code == 0, r.stderr
    assert read_json(out / "metrics.json")["metrics"]["examples"] == 6
    assert not (out / LOCK_FILE).exists()
