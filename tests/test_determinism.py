"""The same command with the same seed, twice, each in its own process: the same metrics.json numbers
(wall-clock times aside). finetune is checked in test_cli_slice and test_finetune_knn; here are the
others, on tiny models."""

import hashlib
import json

import pytest
from conftest import SHARED_DATA, advkit, read_json

pytestmark = pytest.mark.shared_data  # ../shared/datasets: skipped when missing, a failure under CI=true

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _numbers(value):
    """metrics without wall-clock entries (any key naming seconds)."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _twice(tmp_path, *args) -> tuple[dict, dict]:
    docs = []
    for name in ("a", "b"):
        r = advkit(*args, "--out", tmp_path / name, "--quiet", env=ONE_THREAD)
        assert r.code == 0, r.stderr
        docs.append(read_json(tmp_path / name / "metrics.json"))
    assert docs[0]["provenance"]["seed"] == docs[1]["provenance"]["seed"] is not None
    return _numbers(docs[0]["metrics"]), _numbers(docs[1]["metrics"])


def test_poison_twice(tmp_path):
    a, b = _twice(tmp_path, "poison", "--model", "tiny-random-en", "--mode", "lwp", "--dataset", "sst2",
                  "--train-limit", "32", "--limit", "32", "--epochs", "1", "--max-length", "32")
    import math

    # lwp's first loss sums 3 cross-entropies (2 layers through the shared head, then the final one), each
    # about ln 2 for a fresh two-way head: 2.08, where BadNet's single one would be 0.69.
    assert a == b and abs(a["train_loss_first"] - 3 * math.log(2)) < 0.1, a["train_loss_first"]
    digest = {hashlib.sha256((tmp_path / n / "model" / "model.safetensors").read_bytes()).hexdigest() for n in "ab"}
    assert len(digest) == 1  # the poisoned weights are bit-identical


def test_evaluate_attack_twice(tmp_path):
    a, b = _twice(tmp_path, "evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "test",
                  "--limit", "6", "--attack", "deepwordbug")
    assert a == b and a["examples"] == 6
    assert (tmp_path / "a" / "records.jsonl").read_text() == (tmp_path / "b" / "records.jsonl").read_text()


@pytest.fixture(scope="module")
def zh_victim(tmp_path_factory, tiny_zh):
    """tiny-random-zh with a fresh, seeded two-way head whose output depends on the text (tiny-random's
    own initialisation, 0.02, gives every text the same prediction: nothing to attack), its bias
    centred on 200 training reviews so that both labels are predicted."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    from advkit import data

    config = AutoConfig.from_pretrained(tiny_zh, num_labels=2)
    config.initializer_range, config.architectures = 0.3, None
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_zh)
    texts = [e.text for e in data.load("chnsenticorp", "train").examples[:200]]
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")).logits
        model.classifier.bias -= logits.mean(0)
    folder = tmp_path_factory.mktemp("zh_victim")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_attack_zh_twice(tmp_path, zh_victim):
    a, b = _twice(tmp_path, "attack-zh", "--model", zh_victim, "--dataset", "chnsenticorp", "--limit", "6",
                  "--substitutes", "homophone", "--similarity-model", "none", "--fluency-lm", "tiny-random-zh",
                  "--max-queries", "100")
    assert a == b and a["examples"] == 6
    records, again = ([json.loads(line) for line in (tmp_path / n / "records.jsonl").read_text().splitlines()]
                      for n in "ab")
    assert _numbers(records) == _numbers(again)  # every record, each search step's timing aside
    # Not a trivial outcome that any search repeats: examples were attacked and some swap was made.
    assert a["skipped"] < 6 and a["successes"] >= 1, a
    assert any(r["status"] == "success" and r["adversarial"] != r["text"] and r["changed_units"] > 0
               for r in records)


def test_build_piece_lm_twice(tmp_path):
    corpus = tmp_path / "titles.txt"
    lines = (SHARED_DATA / "thucnews" / "train.txt").read_text(encoding="utf-8").splitlines()[:300]
    corpus.write_text("\n".join(line.split("\t")[0] for line in lines) + "\n", encoding="utf-8")
    a, b = _twice(tmp_path, "build-piece-lm", "--tiny", "--corpus", corpus)
    assert a == b
    for name in ("spiece.model", "model.safetensors"):
        digest = {hashlib.sha256((tmp_path / n / name).read_bytes()).hexdigest() for n in "ab"}
        assert len(digest) == 1, name
