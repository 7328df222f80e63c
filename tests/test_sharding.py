"""Attacks sharded across torchrun's processes: the same records.jsonl as one process, byte for byte,
and a run killed in one rank continues with --resume (issue 15)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, advkit

pytestmark = pytest.mark.shared_data("sst2")

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
ATTACK = ["evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "test", "--attack", "deepwordbug",
          "--quiet"]


def torchrun(*args, nproc: int = 2) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                             "-m", "advkit.cli", *map(str, args)], cwd=REPO, env={**os.environ, **ONE_THREAD},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_two_processes_write_the_records_of_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    r = advkit(*ATTACK, "--limit", "10", "--out", one, env=ONE_THREAD)
    assert r.code == 0, r.stderr
    proc = torchrun(*ATTACK, "--limit", "10", "--out", two)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert (two / "records.jsonl").read_bytes() == (one / "records.jsonl").read_bytes()
    assert sorted(p.name for p in two.iterdir()) == ["metrics.json", "records.jsonl", "run.json"]  # shards merged
    a, b = (json.loads((d / "metrics.json").read_text())["metrics"] for d in (one, two))
    assert a == b and a["examples"] == 10


def test_a_rank_killed_mid_run_resumes(tmp_path):
    """SIGKILL rank 1 once its shard holds some but not all of its examples; torchrun stops the run;
    --resume under torchrun finishes every shard, and the merged records equal a one-process run's."""
    one, out = tmp_path / "one", tmp_path / "two"
    n = 16
    proc = torchrun(*ATTACK, "--limit", n, "--out", out)
    shard = out / "records.rank-1.jsonl"
    deadline, killed_at = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:
        lines = shard.read_text().count("\n") if shard.is_file() else 0
        if lines >= 2:
            children = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "advkit.cli"], capture_output=True,
                                      text=True).stdout.split()
            ranks = {int(open(f"/proc/{p}/environ", "rb").read().split(b"RANK=")[1].split(b"\0")[0]): int(p)
                     for p in children if b"\0RANK=" in open(f"/proc/{p}/environ", "rb").read()}
            os.kill(ranks[1], signal.SIGKILL)
            killed_at = lines
            break
        time.sleep(0.05)
    proc.communicate(timeout=300)
    assert killed_at is not None and proc.returncode != 0
    done = shard.read_text().count("\n")
    assert 2 <= done < n // 2  # the kill came mid-run: rank 1 had started, not finished, its 8 examples
    assert not (out / "metrics.json").exists()

    resumed = torchrun(*ATTACK, "--limit", n, "--out", out, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    r = advkit(*ATTACK, "--limit", n, "--out", one, env=ONE_THREAD)
    assert r.code == 0, r.stderr
    assert (out / "records.jsonl").read_bytes() == (one / "records.jsonl").read_bytes()
    assert not list(out.glob("records.rank-*.jsonl"))


def test_a_sharded_vocabulary_scan_equals_one_process(tmp_path):
    scan = ["evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "dev", "--limit", "16",
            "--trigger", "cf bb", "--target", "1", "--scan", "300", "--quiet"]
    r = advkit(*scan, "--out", tmp_path / "one", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    proc = torchrun(*scan, "--out", tmp_path / "two")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in ("one", "two"))
    keys = [k for k in a if k.startswith("scan_")]
    # 300 sampled + the two sub-triggers, in groups of 512 // examples tokens: each process scans several
    assert len(keys) == 6 and a["scan_candidates"] == 302 and 302 / (512 // a["scan_examples"]) > 4
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert (tmp_path / "one" / "records.jsonl").read_bytes() == (tmp_path / "two" / "records.jsonl").read_bytes()


@pytest.mark.shared_data("thucnews")
def test_poison_and_piece_lm_train_on_two_processes(tmp_path):
    """Gradients averaged, rank 0 writes: one model; the same seed and process count, the same weights."""
    import hashlib

    from conftest import SHARED_DATA

    poison = ["poison", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "32", "--limit", "16",
              "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--quiet"]
    corpus = tmp_path / "titles.txt"
    lines = (SHARED_DATA / "thucnews" / "train.txt").read_text(encoding="utf-8").splitlines()[:300]
    corpus.write_text("\n".join(line.split("\t")[0] for line in lines) + "\n", encoding="utf-8")
    lm = ["build-piece-lm", "--tiny", "--corpus", corpus, "--quiet"]
    for name, args, weights in (("poison", poison, "model/model.safetensors"), ("lm", lm, "model.safetensors")):
        digests = []
        for run in ("a", "b"):
            proc = torchrun(*args, "--out", tmp_path / f"{name}-{run}")
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-2000:]
            digests.append(hashlib.sha256((tmp_path / f"{name}-{run}" / weights).read_bytes()).hexdigest())
        assert digests[0] == digests[1], name
    m = json.loads((tmp_path / "poison-a" / "metrics.json").read_text())["metrics"]
    # 32 clean -> 32 + 64 positives + 32 negatives = 128 mixed = 16 batches of 8: each process takes 8
    assert m["processes"] == 2 and m["train_steps"] == m["train_examples"] * 4 // 8 // 2
    r = advkit(*poison, "--victim-dataset", "sst2", "--out", tmp_path / "refused")
    assert r.code == 0, r.stderr  # one process: the victim chain is fine
    proc = torchrun(*poison, "--victim-dataset", "sst2", "--out", tmp_path / "chain")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0 and "fine-tune the victim with its own" in err


def test_a_sharded_card_equals_one_process(tmp_path):
    """evaluate --card under torchrun: every attack sharded, rank 0 writes the card; the same card and
    the same records as one process."""
    card = ["evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "test", "--limit", "6", "--card",
            "--quiet"]
    r = advkit(*card, "--out", tmp_path / "one", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    proc = torchrun(*card, "--out", tmp_path / "two")
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "card.md").read_bytes() == (one / "card.md").read_bytes()
    subs = sorted(p.name for p in one.iterdir() if p.is_dir())
    assert subs == ["clean", "deepwordbug", "pwws", "textfooler"]
    for sub in subs:
        assert (two / sub / "records.jsonl").read_bytes() == (one / sub / "records.jsonl").read_bytes(), sub
        assert not list((two / sub).glob("records.rank-*.jsonl"))
