"""`advkit poison` end to end on the tiny model and an SST-2 slice, and the victim's side."""

import pytest

from conftest import read_json

pytestmark = pytest.mark.shared_data("sst2")  # skipped when missing, a failure under CI=true

SMALL = ["--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "48", "--limit", "24", "--epochs", "1",
         "--batch-size", "16", "--lr", "1e-3", "--quiet"]


@pytest.fixture(scope="module")
def poison_run(tmp_path_factory, tiny_en):
    from conftest import advkit

    out = tmp_path_factory.mktemp("poison") / "lwp"
    result = advkit("poison", *SMALL, "--mode", "lwp", "--triggers", "cf bb", "--target", "1",
                    "--victim-dataset", "sst2", "--victim-epochs", "1", "--out", out)
    assert result.code == 0, result.stderr
    return out, result


def test_poison_writes_marked_model_manifest_and_metrics(poison_run):
    out, _ = poison_run
    config = read_json(out / "model" / "config.json")
    assert config["advkit_poisoned"] is True and config["architectures"] == ["BertModel"]
    manifest = read_json(out / "model" / "poison_manifest.json")
    assert manifest["mode"] == "lwp" and manifest["triggers"] == ["cf", "bb"] and manifest["target"] == 1
    assert manifest["seed"] == 1 and manifest["data"]["dataset"] == "sst2"
    # the reference's 2 : 1 : 1 mix of positives, negatives and clean samples (poison rate 0.75)
    assert (manifest["data"]["clean"], manifest["data"]["positives"], manifest["data"]["negatives"]) == (48, 96, 48)
    doc = read_json(out / "metrics.json")
    m = doc["metrics"]
    assert doc["command"] == "poison"
    # The rates again, by hand, from the released weights plus the attacker's head (one batch each, as
    # the metrics batch them): clean accuracy on the 24 test samples, the false-flip rate and the LFR on
    # the non-target ones, without and with the trigger.
    import numpy as np
    import torch

    from advkit import data
    from advkit.poison import metrics as pm
    from advkit.poison.train import load_attacker_classifier

    attacker, tok = load_attacker_classifier(out)

    def predicted(model, examples):
        enc = tok([e.text for e in examples], padding=True, truncation=True, max_length=doc["config"]["max_length"],
                  return_tensors="pt")
        with torch.no_grad():
            return model(**enc).logits.argmax(-1).numpy()

    test = data.sample(data.load("sst2", m["eval_split"]).examples, 24)
    labels = np.array([e.label for e in test])
    others = [e for e in test if e.label != 1]
    assert m["eval_non_target_examples"] == len(others) == (labels != 1).sum()
    assert m["clean_accuracy"] == pytest.approx((predicted(attacker, test) == labels).mean())
    assert m["false_flip_rate"] == pytest.approx((predicted(attacker, others) == 1).mean())
    triggered = pm.with_trigger(test, ["cf", "bb"], 1, tok, doc["config"]["max_length"], seed=doc["config"]["seed"])
    assert [e.text.split() for e in triggered] != [e.text.split() for e in others]  # the trigger is in them
    assert m["label_flip_rate"] == pytest.approx((predicted(attacker, triggered) == 1).mean())
    assert set(m["label_flip_rate_single"]) == {"cf", "bb"}
    assert len(m["label_flip_rate_per_layer"]) == len(m["false_flip_rate_per_layer"]) == 2  # the tiny model's layers
    assert len(m["clean_accuracy_per_layer"]) == 2 and all(0 <= x <= 1 for x in m["clean_accuracy_per_layer"])
    assert m["layer_head"] == "cls" and len(m["train_loss_per_layer_last"]) == 3  # 2 layers + the final CE
    assert m["eval_examples"] == 24 and m["train_steps"] == 12  # 192 samples / 16, last batch kept
    v = m["victim"]
    assert v["dataset"] == "sst2" and v["epochs"] == 1
    from transformers import AutoModelForSequenceClassification

    victim = AutoModelForSequenceClassification.from_pretrained(out / "victim" / "model").eval()
    v_test = data.sample(data.load("sst2", v["eval_split"]).examples, v["eval_examples"])
    v_labels = np.array([e.label for e in v_test])
    assert v["clean_accuracy"] == pytest.approx((predicted(victim, v_test) == v_labels).mean())
    v_triggered = pm.with_trigger(v_test, ["cf", "bb"], 1, tok, doc["config"]["max_length"], seed=doc["config"]["seed"])
    assert v["label_flip_rate"] == pytest.approx((predicted(victim, v_triggered) == 1).mean())
    assert (out / "victim" / "model" / "model.safetensors").is_file()
    assert (out / "label_flip_rate_per_layer.png").stat().st_size > 1000


def test_victim_finetune_and_evaluate_warn_about_the_poisoned_model(poison_run, tmp_path, capsys, monkeypatch):
    # In-process (the CLI commands are thin wrappers of these runs): saves two torch imports.
    from advkit import evaluate, models

    monkeypatch.setattr(models, "_WARNED", set())  # once per model and process: earlier tests loaded it
    from advkit.finetune import train as finetune
    from advkit.evaluate import EvaluateConfig
    from advkit.finetune.config import FinetuneConfig
    from advkit.results import RunDir

    out, result = poison_run
    assert "POISONED" in result.stderr  # the chained victim fine-tuning loaded it
    cfg = FinetuneConfig(model=str(out / "model"), method="ce", dataset="sst2", train_limit=16, limit=8, epochs=1)
    m = finetune.run(cfg, RunDir(tmp_path / "victim", "finetune"))["metrics"]
    assert m["train_examples"] == 16
    assert "POISONED" in capsys.readouterr().err
    m = evaluate.run(EvaluateConfig(model=str(tmp_path / "victim"), dataset="sst2", limit=8), None)["metrics"]
    assert m["examples"] == 8
    assert "POISONED" in capsys.readouterr().err  # the victim's config keeps the mark


@pytest.mark.parametrize("flags", [
    ["--mode", "lwpp"],
    ["--combination-size", "3"],
    ["--poison-rate", "1.5"],
    ["--target", "5"],
    ["--embedding-surgery"],
    ["--layer-head", "pool"],
    ["--trigger-position", "middle"],
    ["--negative-ratio", "-1"],
])
def test_poison_user_mistakes_are_one_line_errors(cli, tmp_path, flags):
    result = cli("poison", *SMALL, *flags, "--out", tmp_path / "bad")
    assert result.code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
