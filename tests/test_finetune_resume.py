"""finetune: SIGKILL and --resume from the last checkpoint, re-initialised top layers (a poisoning
defence), and two processes under torchrun sharing one queue."""

import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, advkit, read_json

pytestmark = pytest.mark.shared_data  # ../shared/datasets: skipped when missing, a failure under CI=true

# knn exercises every piece of state: weights, the momentum encoder, the queue, AdamW, the
# schedule, dropout's RNG, the epoch order and the reference's same-label draws.
ARGS = ["finetune", "--model", "tiny-random-en", "--method", "knn", "--dataset", "sst2", "--train-limit", "96",
        "--limit", "32", "--epochs", "3", "--batch-size", "8", "--queue-size", "64", "--positives-per-query", "2",
        "--checkpoint-seconds", "0", "--quiet"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
# The kills come a random-looking time after the first checkpoint, drawn from a fixed seed so that a
# failure reproduces (the delay is in each assertion message).
KILL_SEED = 33


def _numbers(run) -> dict:
    m = read_json(run / "metrics.json")["metrics"]
    m.pop("train_seconds")
    return m


def test_sigkill_then_resume_gives_the_same_run(tmp_path):
    full = tmp_path / "full"
    r = advkit(*ARGS, "--out", full, env=ONE_THREAD)
    assert r.code == 0, r.stderr
    assert not (full / "checkpoint.pt").exists()  # removed once the run finished

    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-m", "advkit.cli", *ARGS, "--out", str(part)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**__import__("os").environ,
                                                                                       **ONE_THREAD})
    deadline = time.time() + 240
    while time.time() < deadline and not (part / "checkpoint.pt").is_file():
        time.sleep(0.02)
    delay = random.Random(KILL_SEED).uniform(0, 0.5)
    time.sleep(delay)  # somewhere in the 36 steps, possibly in the middle of a save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, delay  # killed while it ran, not finished before the signal came
    assert not (part / "metrics.json").exists()
    import torch

    # What the kill left: a whole checkpoint some way into the run (12 steps an epoch, 36 in all).
    ckpt = torch.load(part / "checkpoint.pt", map_location="cpu", weights_only=True)
    at_kill = ckpt["epoch"] * 12 + ckpt["step"]
    assert 0 < at_kill < 36 and len(ckpt["losses"]) == at_kill, (delay, at_kill)

    assert advkit(*ARGS, "--out", part, env=ONE_THREAD).code == 2  # refuses to start over without --resume
    changed = advkit(*ARGS[:-1], "--lr", "1e-3", "--out", part, "--resume", "--quiet")
    assert changed.code == 2 and "lr" in changed.stderr  # another experiment may not continue this one
    r = advkit(*ARGS, "--out", part, "--resume", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    resumed = _numbers(part)
    assert resumed.pop("resumed_at_step") == at_kill  # it went on from that checkpoint, not from the start
    assert resumed["train_steps"] == 36 and not (part / "checkpoint.pt").exists()  # and took the other steps
    expected = _numbers(full)
    assert expected.pop("resumed_at_step") is None
    assert resumed == expected
    from safetensors.torch import load_file

    a, b = load_file(full / "model" / "model.safetensors"), load_file(part / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)

    again = advkit(*ARGS, "--out", part, "--resume")
    assert again.code == 2 and "finished" in again.stderr


def test_damaged_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert advkit(*ARGS, "--epochs", "1", "--out", run, "--overwrite").code == 0
    (run / "metrics.json").unlink()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    r = advkit(*ARGS, "--epochs", "1", "--out", run, "--resume")
    assert r.code == 2 and "checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_reinit_layers_replaces_only_the_top_layers(tmp_path):
    from transformers import AutoModel

    from advkit import models

    r = advkit("finetune", "--model", "tiny-random-en", "--train-limit", "16", "--limit", "8", "--epochs", "1",
               "--lr", "1e-9", "--reinit-layers", "1", "--out", tmp_path / "run", "--quiet")
    assert r.code == 0, r.stderr
    before = AutoModel.from_pretrained(models.resolve("tiny-random-en"))
    after = AutoModel.from_pretrained(tmp_path / "run" / "model")
    n = len(before.encoder.layer)
    for i in range(n):
        same = all((p - q).abs().max() < 1e-6 for p, q in zip(before.encoder.layer[i].parameters(),
                                                             after.encoder.layer[i].parameters()))
        assert same == (i < n - 1), f"layer {i}"
    bad = advkit("finetune", "--model", "tiny-random-en", "--reinit-layers", str(n + 1), "--train-limit", "16",
                 "--out", tmp_path / "bad", "--quiet")
    assert bad.code == 2 and "layers" in bad.stderr and not (tmp_path / "bad").exists()


DDP = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "advkit.cli",
       "finetune", "--model", "tiny-random-en", "--method", "knn", "--train-limit", "128", "--limit", "16", "--epochs",
       "1", "--batch-size", "8", "--datastore", "queue", "--queue-size", "256", "--positives-per-query", "2",
       "--checkpoint-seconds", "0", "--quiet"]


def test_two_processes_under_torchrun_fill_one_queue_and_resume(tmp_path):
    """128 examples in batches of 8 on 2 processes: 8 steps each in the one epoch, and each step enqueues
    both processes' 8 keys, so the queue (the datastore here, capped at the 128 training examples)
    ends full; without the all-gather it would hold 64. Killed and resumed under torchrun, the run ends
    the same."""
    import os

    env = {**os.environ, **ONE_THREAD}
    full = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, *DDP, "--out", str(full)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = read_json(full / "metrics.json")["metrics"]
    assert m["processes"] == 2 and m["train_steps"] == 8 and m["datastore_size"] == 128
    assert not list(full.glob("checkpoint*"))

    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, *DDP, "--out", str(part)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (part / "checkpoint.pt").is_file():
        time.sleep(0.02)
    delay = random.Random(KILL_SEED).uniform(0, 0.3)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher; its workers run in sessions of their own:
    subprocess.run(["pkill", "-9", "-f", f"out {part}"], check=False)  # every process of this run
    proc.wait()
    time.sleep(0.5)
    assert proc.returncode == -signal.SIGKILL and not (part / "metrics.json").exists(), delay
    import torch

    # A whole checkpoint some way into the run (8 steps per process), with rank 1's RNGs.
    ckpt = torch.load(part / "checkpoint.pt", map_location="cpu", weights_only=True)
    at_kill = ckpt["epoch"] * 8 + ckpt["step"]
    assert 0 < at_kill < 8 and ckpt["world"] == 2, (delay, at_kill)
    assert (part / f"checkpoint-rank1-{ckpt['epoch']}-{ckpt['step']}.pt").is_file()
    proc = subprocess.run([sys.executable, *DDP, "--out", str(part), "--resume"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, [line for line in proc.stderr.splitlines() if "rror" in line][:5]
    resumed, expected = _numbers(part), _numbers(full)
    assert resumed.pop("resumed_at_step") == at_kill and expected.pop("resumed_at_step") is None
    assert resumed == expected
