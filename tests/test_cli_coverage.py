"""Commands and flags that had no test through the CLI (issue 33): `finetune --method scl | moco`,
`--shots K --seeds a,b,c`, `--patience N`, and `evaluate --attack bert-attack | bae --attack-lm`.

Each number the command writes is derived again here from what else it wrote (the per-seed runs, the
records, the saved model run with plain transformers), so that a wrong number fails.

The base model is tiny-random-en's architecture initialised wide: tiny-random's own 0.02 gives nearly
the same output for every text, so accuracies would be class shares and attacks could flip nothing.
"""

import json
import math

import pytest
from conftest import advkit, read_json

pytestmark = pytest.mark.shared_data("sst2")

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TRAIN = ["--dataset", "sst2", "--train-limit", "64", "--limit", "64", "--epochs", "2", "--batch-size", "16",
         "--lr", "1e-3", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_en, one_thread):
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_en, num_labels=2)
    config.initializer_range = 0.2
    config.architectures = None
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("base")
    BertForSequenceClassification(config).bert.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_en).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ce_run(tmp_path_factory, base):
    """A plain CE fine-tuning: the baseline of the contrastive methods, and the attacks' victim."""
    out = tmp_path_factory.mktemp("ft") / "ce"
    r = advkit("finetune", "--model", base, "--method", "ce", *TRAIN, "--out", out, env=ONE_THREAD)
    assert r.code == 0, r.stderr
    return out


def predict(model_dir, texts) -> list[int]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        return model(**enc).logits.argmax(-1).tolist()


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_accuracy(run) -> float:
    """eval_accuracy is the records' accuracy, and the records' predictions are the saved model's."""
    m = read_json(run / "metrics.json")["metrics"]
    records = rows(run / "records.jsonl")
    assert len(records) == m["eval_examples"]
    assert m["eval_accuracy"] == sum(r["prediction"] == r["label"] for r in records) / len(records)
    assert predict(run / "model", [r["text"] for r in records]) == [r["prediction"] for r in records]
    return m["eval_accuracy"]


def weights(run) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


# ------------------------------------------------------------------------------------------ finetune


@pytest.mark.parametrize("method", ["scl", "moco"])
def test_contrastive_methods_train_another_model_than_ce(method, base, ce_run, tmp_path):
    """The same seed, data and steps as the CE run: only the contrastive term differs, so the weights must."""
    out = tmp_path / method
    r = advkit("finetune", "--model", base, "--method", method, *TRAIN, "--out", out, env=ONE_THREAD)
    assert r.code == 0, r.stderr
    m = read_json(out / "metrics.json")["metrics"]
    assert m["method"] == method and m["train_steps"] == 2 * 64 // 16 and m["epochs_trained"] == 2
    assert m["tau"] == {"scl": 0.3, "moco": 0.07}[method]  # the documented defaults
    assert math.isfinite(m["contrastive_loss_last_epoch"]) and m["contrastive_loss_last_epoch"] > 0
    ce = read_json(ce_run / "metrics.json")["metrics"]
    assert "contrastive_loss_last_epoch" not in ce and ce["train_steps"] == m["train_steps"]
    check_accuracy(out)
    mine, theirs = weights(out), weights(ce_run)
    assert mine.keys() == theirs.keys()  # the same classifier is saved (the projection is not)
    assert any(not (mine[k] == theirs[k]).all() for k in mine)
    assert m["train_loss_first"] != ce["train_loss_first"]  # the loss is lambda * L_con + (1 - lambda) * CE
    if method == "moco":
        steps = m["train_steps"]
        assert m["queue_size"] == 64  # never more slots than training examples
        assert m["momentum_derived"] and m["momentum"] == pytest.approx(min(0.999, max(0.9, 1 - 10 / steps)))
        assert 0 < m["key_encoder_progress"] <= 1.5  # the key encoder followed the query encoder
    else:
        assert "queue_size" not in m and "momentum" not in m


def test_shots_and_seeds_mean_and_std_from_the_seed_runs(base, tmp_path):
    out = tmp_path / "fs"
    seeds = [13, 21, 42]
    r = advkit("finetune", "--model", base, "--dataset", "sst2", "--shots", "8", "--seeds", ",".join(map(str, seeds)),
               "--limit", "64", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--out", out, "--quiet",
               env=ONE_THREAD)
    assert r.code == 0, r.stderr
    doc = read_json(out / "metrics.json")
    m = doc["metrics"]
    accuracies = []
    for s in seeds:
        run = out / f"seed-{s}"
        sub = read_json(run / "metrics.json")
        assert sub["config"]["seed"] == s and sub["config"]["seeds"] is None and sub["config"]["shots"] == 8
        assert sub["metrics"]["train_examples"] == 16 and sub["metrics"]["shots"] == 8  # 8 per class
        assert m["per_seed"][str(s)] == sub["metrics"]
        accuracies.append(check_accuracy(run))
    assert len({read_json(out / f"seed-{s}" / "metrics.json")["metrics"]["train_loss_first"] for s in seeds}) == 3
    n = len(accuracies)
    mean = sum(accuracies) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (n - 1))  # the sample std over seeds
    assert std > 0  # the seeds disagree, so n and n - 1 give different answers
    assert m["seeds"] == seeds and m["shots"] == 8
    assert m["eval_accuracy_mean"] == pytest.approx(mean) and m["eval_accuracy"] == pytest.approx(mean)
    assert m["eval_accuracy_std"] == pytest.approx(std)
    assert m["accuracy_cls_mean"] == pytest.approx(mean) and m["accuracy_cls_std"] == pytest.approx(std)
    assert f"± {std:.4f} over seeds 13,21,42" in r.stdout


def stop_epoch(curve: list[float], patience: int, most: int) -> int:
    """The epoch after which training stops: the first at which none of the last `patience` measurements
    beat the best before them; else the last epoch."""
    for e in range(patience + 1, most + 1):
        if max(curve[e - patience : e]) <= max(curve[: e - patience]):
            return e
    return most


def test_patience_stops_where_the_dev_curve_says(base, tmp_path):
    """--patience 2 of at most 8 epochs, test reported: the head's accuracy on dev (a fixed 500) after each
    epoch decides; the last of the recorded curve is the saved model's accuracy there."""
    from advkit import data

    out = tmp_path / "patience"
    most, patience = 8, 2
    r = advkit("finetune", "--model", base, "--dataset", "sst2", "--eval-split", "test", "--train-limit", "64",
               "--limit", "32", "--epochs", most, "--patience", patience, "--batch-size", "16", "--lr", "1e-3",
               "--out", out, "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    m = read_json(out / "metrics.json")["metrics"]
    curve = m["dev_accuracy_per_epoch"]
    assert m["dev_accuracy_on"] == "dev (500 of 872 examples)" and m["eval_split"] == "test"
    assert len(curve) == m["epochs_trained"] == stop_epoch(curve, patience, most)
    assert m["epochs_trained"] < most and m["converged"]  # it stopped early,
    assert m["epochs_trained"] > patience + 1  # but not at the first chance: an improvement reset the count
    assert m["train_steps"] == m["epochs_trained"] * 64 // 16
    dev = data.sample(data.load("sst2", "dev").examples, 500)
    right = sum(p == e.label for p, e in zip(predict(out / "model", [e.text for e in dev]), dev))
    assert curve[-1] == right / len(dev)
    check_accuracy(out)


# ------------------------------------------------------------------------------------------ attacks


@pytest.fixture(scope="module")
def right_examples(ce_run, tmp_path_factory):
    """A data-set folder of SST-2 test examples that the CE victim classifies correctly."""
    from advkit import data

    test = data.load("sst2", "test").examples[:60]
    predicted = predict(ce_run / "model", [e.text for e in test])
    right = [e for p, e in zip(predicted, test) if p == e.label][:6]
    assert len(right) == 6 and len({e.label for e in right}) == 2
    folder = tmp_path_factory.mktemp("right")
    (folder / "test.tsv").write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in right),
                                     encoding="utf-8")
    return folder


@pytest.mark.parametrize("attack", ["bert-attack", "bae"])
def test_masked_lm_attacks_flip_the_victim(attack, ce_run, right_examples, tmp_path):
    """bert-attack / bae with tiny-random-en's masked-LM head: some success, and every adversarial text, run
    through the victim again, gets another label than the example's (and the one the record says)."""
    out = tmp_path / attack
    r = advkit("evaluate", "--model", ce_run, "--dataset", right_examples, "--split", "test", "--attack", attack,
               "--attack-lm", "tiny-random-en", "--attack-encoder", "tiny-random-en", "--precision", "fp32",
               "--out", out, "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    m = read_json(out / "metrics.json")["metrics"]
    records = rows(out / "records.jsonl")
    assert m["attack"] == attack and m["accuracy_before"] == 1.0 and m["skipped"] == 0
    assert predict(ce_run / "model", [x["original"] for x in records]) == [x["label"] for x in records]
    won = [x for x in records if x["status"] == "success"]
    assert won and m["successes"] == len(won) and m["attack_success_rate"] == len(won) / len(records)
    again = predict(ce_run / "model", [x["adversarial"] for x in won])
    assert again == [x["adversarial_prediction"] for x in won]
    assert all(p != x["label"] for p, x in zip(again, won))
    assert all(x["words_changed"] >= 1 and x["adversarial"] != x["original"] for x in won)
    assert m["accuracy_under_attack"] == (len(records) - len(won)) / len(records)
