"""The first vertical slice end to end on tiny-random-en: finetune, then evaluate, through the CLI."""

import hashlib
import json
import math
import subprocess
import sys

import pytest
from conftest import REPO, read_json

from advkit import models
from advkit.evaluate import EvaluateConfig

pytestmark = pytest.mark.shared_data  # ../shared/datasets: skipped when missing, a failure under CI=true

FINETUNE = ["finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "64", "--limit", "32",
            "--epochs", "1", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_en):
    """Two finetune runs with the same seed (for determinism), each in its own process."""
    from conftest import advkit

    base = tmp_path_factory.mktemp("slice")
    for name in ("ft1", "ft2"):
        r = advkit(*FINETUNE, "--out", base / name)
        assert r.code == 0, r.stderr
    return base


def test_finetune_writes_model_and_metrics(runs):
    doc = read_json(runs / "ft1" / "metrics.json")
    assert doc["command"] == "finetune"
    m = doc["metrics"]
    assert (m["train_examples"], m["eval_examples"], m["eval_split"]) == (64, 32, "dev")
    assert m["train_steps"] == math.ceil(64 / doc["config"]["batch_size"])
    # The saved model's accuracy on the same 32 dev samples, by hand (one padded batch, argmax).
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from advkit import data

    saved = AutoModelForSequenceClassification.from_pretrained(runs / "ft1" / "model").eval()
    tok = AutoTokenizer.from_pretrained(runs / "ft1" / "model")
    dev = data.sample(data.load("sst2", "dev").examples, 32)
    enc = tok([e.text for e in dev], padding=True, truncation=True, max_length=doc["config"]["max_length"],
              return_tensors="pt")
    with torch.no_grad():
        right = (saved(**enc).logits.argmax(-1).numpy() == np.array([e.label for e in dev])).sum()
    assert m["eval_accuracy"] == right / 32
    # A fresh two-way head on a random encoder starts near chance: cross-entropy about ln 2.
    assert abs(m["train_loss_first"] - math.log(2)) < 0.3 and math.isfinite(m["train_loss_last_epoch"])
    assert doc["config"]["model"] == "tiny-random-en" and doc["config"]["train_limit"] == 64
    assert doc["provenance"]["seed"] == 1 and doc["provenance"]["device"] == "cpu"
    model = runs / "ft1" / "model"
    assert (model / "model.safetensors").is_file() and not (model / "pytorch_model.bin").exists()
    cfg = read_json(model / "config.json")
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    assert not list(runs.rglob("*.tmp"))  # atomic writes left nothing behind


def test_same_seed_gives_identical_numbers(runs):
    a, b = (read_json(runs / n / "metrics.json")["metrics"] for n in ("ft1", "ft2"))
    a.pop("train_seconds"), b.pop("train_seconds")
    assert a == b
    digest = [hashlib.sha256((runs / n / "model" / "model.safetensors").read_bytes()).hexdigest()
              for n in ("ft1", "ft2")]
    assert digest[0] == digest[1]  # the trained weights are bit-identical


def test_evaluate_accepts_run_directory_and_folder(runs, cli):
    out = runs / "ev"
    r = cli("evaluate", "--model", runs / "ft1", "--dataset", "sst2", "--split", "dev", "--limit", "32",
            "--quiet", "--out", out)
    assert r.code == 0, r.stderr
    doc = read_json(out / "metrics.json")
    assert doc["command"] == "evaluate"
    m = doc["metrics"]
    assert (m["examples"], m["split"], m["model"]) == (32, "dev", str(runs / "ft1" / "model"))
    # The same 32 dev examples finetune evaluated after training: the same accuracy.
    assert m["accuracy"] == read_json(runs / "ft1" / "metrics.json")["metrics"]["eval_accuracy"]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 32
    assert sum(r["prediction"] == r["label"] for r in records) / 32 == m["accuracy"]
    assert all(abs(sum(r["probs"]) - 1) < 1e-4 for r in records)

    # The model folder itself, written over the same run directory as `--overwrite` does (in-process: a
    # third model-loading subprocess would add seconds and test no more of the CLI than the one above).
    from advkit import evaluate
    from advkit.results import RunDir

    (out / "stale.txt").write_text("from an older run")
    cfg = EvaluateConfig(model=str(runs / "ft1" / "model"), dataset="sst2", split="dev", limit=32)
    evaluate.run(cfg, RunDir(out, "evaluate", overwrite=True))
    assert not (out / "stale.txt").exists()
    again = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert again == records
    assert read_json(out / "metrics.json")["config"]["model"] == str(runs / "ft1" / "model")


def test_finetune_refuses_to_overwrite_its_run(runs, cli):
    before = (runs / "ft2" / "metrics.json").read_bytes()
    r = cli(*FINETUNE, "--out", runs / "ft2")
    assert r.code == 2 and "Traceback" not in r.stderr and r.stderr.startswith(f"error: --out {runs / 'ft2'}")
    assert (runs / "ft2" / "metrics.json").read_bytes() == before


def test_evaluate_accepts_an_alias(tiny_en):
    from advkit import evaluate

    cfg = EvaluateConfig(model="tiny-random-en", dataset="sst2", split="dev", limit=32)
    m = evaluate.run(cfg, None)["metrics"]
    assert m["examples"] == 32 and m["model"] == str(models.resolve("tiny-random-en"))
    # The alias is that folder: the same seeded fresh head, the same 32 predictions.
    folder = evaluate.run(EvaluateConfig(model=m["model"], dataset="sst2", split="dev", limit=32), None)["metrics"]
    assert folder["accuracy"] == m["accuracy"] and (m["accuracy"] * 32).is_integer()


def test_help_is_light(cli):
    r = cli("--help")
    assert r.code == 0 and "finetune" in r.stdout and "evaluate" in r.stdout
    for command in ("finetune", "evaluate"):
        assert cli(command, "--help").code == 0
    out = subprocess.run([sys.executable, "-c", "import advkit.cli, sys; "
                          "print('torch' in sys.modules, 'transformers' in sys.modules)"],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.split() == ["False", "False"]
