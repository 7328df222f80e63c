"""`advkit poison` end to end on the tiny model and an SST-2 slice, and the victim's side."""

import pytest

from conftest import SHARED_DATA, read_json

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir(), reason="needs ../shared/datasets/sst2")

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
    assert manifest["data"]["clean"] == 48 and manifest["data"]["positives"] + manifest["data"]["negatives"] == 48
    doc = read_json(out / "metrics.json")
    m = doc["metrics"]
    assert doc["command"] == "poison"
    for key in ("clean_accuracy", "label_flip_rate", "false_flip_rate"):
        assert 0 <= m[key] <= 1
    assert set(m["label_flip_rate_single"]) == {"cf", "bb"}
    assert len(m["label_flip_rate_per_layer"]) == len(m["false_flip_rate_per_layer"]) == 2  # the tiny model's layers
    assert m["eval_examples"] == 24 and m["train_steps"] == 6  # 96 samples / 16, last batch kept
    v = m["victim"]
    assert v["dataset"] == "sst2" and v["epochs"] == 1 and 0 <= v["label_flip_rate"] <= 1
    assert 0 <= v["clean_accuracy"] <= 1
    assert (out / "victim" / "model" / "model.safetensors").is_file()
    assert (out / "label_flip_rate_per_layer.png").stat().st_size > 1000


def test_victim_finetune_and_evaluate_warn_about_the_poisoned_model(poison_run, tmp_path, capsys):
    # In-process (the CLI commands are thin wrappers of these runs): saves two torch imports.
    from advkit import evaluate, finetune
    from advkit.config import EvaluateConfig, FinetuneConfig
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
])
def test_poison_user_mistakes_are_one_line_errors(cli, tmp_path, flags):
    result = cli("poison", *SMALL, *flags, "--out", tmp_path / "bad")
    assert result.code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
