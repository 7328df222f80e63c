"""--precision: bf16 autocast for victim queries and training, `auto` resolved by the hardware, and the
resolved value recorded with the run."""

import numpy as np
import pytest
from conftest import advkit, read_json

from advkit import cli, config, precision
from advkit.predictor import load_predictor
from advkit.victim import Victim

TEXTS = ["a gripping , funny and moving film", "dull and far too long", "it is what it is", "an utter mess"] * 4


def test_bf16_queries_are_close_to_fp32_and_not_the_same_computation(tiny_en):
    fp32 = load_predictor(str(tiny_en))
    bf16 = load_predictor(str(tiny_en), precision="bf16")
    assert isinstance(fp32, Victim) and (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a, b = fp32.predict_proba(TEXTS), bf16.predict_proba(TEXTS)
    assert a.dtype == b.dtype == np.float32
    diff = np.abs(a - b).max()
    assert 0 < diff < 0.02  # bf16 rounds (so not bit-identical), but only in the third decimal
    assert fp32.queries == bf16.queries == len(TEXTS)


@pytest.mark.shared_data("sst2")
def test_evaluate_records_the_precision_and_refuses_others(tmp_path):
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "dev", "--limit", "8",
               "--precision", "bf16", "--out", tmp_path / "a", "--quiet")
    assert r.code == 0, r.stderr
    assert read_json(tmp_path / "a" / "metrics.json")["config"]["precision"] == "bf16"
    r = advkit("evaluate", "--model", "tiny-random-en", "--precision", "fp16", "--out", tmp_path / "b")
    assert r.code == 2 and r.stderr.strip().startswith("error: --precision must be one of auto, fp32, bf16")
    assert not (tmp_path / "b").exists()


AVX2 = {"capability": "AVX2", "avx512_bf16": False, "amx": False}
AVX512 = {"capability": "AVX512", "avx512_bf16": False, "amx": False}  # e.g. Skylake / Cascade Lake


@pytest.mark.parametrize("features, resolved", [
    (AVX2, "fp32"), (AVX512, "fp32"), ({"capability": "DEFAULT"}, "fp32"),
    ({**AVX512, "avx512_bf16": True}, "bf16"), ({**AVX512, "amx": True}, "bf16"),
    ({"capability": "AVX512_BF16"}, "bf16"),  # a torch whose capability string names the extension
])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(features, resolved):
    assert precision.resolve("auto", "cpu", features) == resolved
    # an explicit choice is never second-guessed
    assert precision.resolve("bf16", "cpu", features) == "bf16"
    assert precision.resolve("fp32", "cpu", {**AVX512, "amx": True}) == "fp32"


@pytest.mark.parametrize("bf16_supported", [True, False])
def test_auto_on_cuda_asks_the_device(monkeypatch, bf16_supported):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert precision.resolve("auto", "cuda", AVX2) == ("bf16" if bf16_supported else "fp32")


@pytest.mark.parametrize("command", ["finetune", "evaluate", "poison", "attack-zh", "build-piece-lm"])
@pytest.mark.parametrize("features, resolved", [(AVX2, "fp32"), ({**AVX512, "avx512_bf16": True}, "bf16")])
def test_every_command_records_what_auto_resolved_to(monkeypatch, command, features, resolved):
    monkeypatch.setattr(precision, "cpu_features", lambda: features)
    cfg = config.build(cli.COMMANDS[command], None, {})
    assert cfg.precision == resolved


def test_this_machine_resolves_auto_by_its_own_cpu(tmp_path):
    """Through the CLI, with no --precision: the config holds fp32 or bf16, whichever this CPU earns."""
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "dev", "--limit", "4",
               "--out", tmp_path / "a", "--quiet")
    assert r.code == 0, r.stderr
    f = precision.cpu_features()
    assert read_json(tmp_path / "a" / "metrics.json")["config"]["precision"] == \
        ("bf16" if f["avx512_bf16"] or f["amx"] else "fp32")


@pytest.mark.shared_data("sst2")
def test_training_runs_under_bf16_autocast_when_asked(tmp_path):
    """The same seeded fine-tune in fp32 and bf16: the first step's loss is computed in bf16 (so it differs
    in the low digits, where a fp32 run repeats itself exactly)."""
    losses = {}
    for name, p in (("a", "fp32"), ("b", "fp32"), ("c", "bf16")):
        r = advkit("finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "32",
                   "--limit", "8", "--epochs", "1", "--batch-size", "16", "--precision", p, "--no-save-model",
                   "--out", tmp_path / name, "--quiet")
        assert r.code == 0, r.stderr
        doc = read_json(tmp_path / name / "metrics.json")
        assert doc["config"]["precision"] == p
        losses[name] = doc["metrics"]["train_loss_first"]
    assert losses["a"] == losses["b"]
    assert 0 < abs(losses["a"] - losses["c"]) < 0.05
