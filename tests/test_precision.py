"""Victim queries under bf16 autocast (--precision bf16): close to fp32, and recorded with the run."""

import numpy as np
import pytest
from conftest import advkit, read_json

from advkit import models
from advkit.predictor import load_predictor

TEXTS = ["a gripping , funny and moving film", "dull and far too long", "it is what it is", "an utter mess"] * 4


def test_bf16_queries_are_close_to_fp32_and_not_the_same_computation(tiny_en):
    fp32 = load_predictor(str(tiny_en))
    bf16 = load_predictor(str(tiny_en), precision="bf16")
    assert isinstance(fp32, models.Victim) and (fp32.precision, bf16.precision) == ("fp32", "bf16")
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
    assert r.code == 2 and r.stderr.strip().startswith("error: --precision must be one of fp32, bf16")
    assert not (tmp_path / "b").exists()
