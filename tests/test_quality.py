"""The quality of English adversarial examples (issue 32, item 1): the word Kneser-Ney judge, the scores
in each record and metrics.json, and --min-similarity as a constraint the search respects."""

import json
import random

import numpy as np
import pytest

from advkit.fluency import CharNgram, WordNgram, english_judge
from conftest import read_json


def test_word_kn_is_the_character_estimator_over_words():
    """On one-letter words WordNgram must give CharNgram's probabilities (checked by hand in
    test_fluency.py), for every context and next symbol, seen or not."""
    corpus = ["ab", "ab", "ac", "bca", "cab"]
    chars, words = CharNgram(corpus), WordNgram([" ".join(line) for line in corpus])
    ids = {CharNgram.BOS: WordNgram.BOS, CharNgram.EOS: WordNgram.EOS}
    symbols = ["a", "b", "c", "z", CharNgram.BOS, CharNgram.EOS]
    for u in symbols:
        for v in symbols:
            for w in symbols[:-2] + [CharNgram.EOS]:
                assert words.prob(ids.get(u, u), ids.get(v, v), ids.get(w, w)) == pytest.approx(chars.prob(u, v, w))
    assert words("a b c") == pytest.approx(chars("abc"))


def _total(lm: WordNgram, u, v) -> float:
    """P(w | u v) summed over every word seen after something, the end mark, and the unseen slot."""
    seen = np.flatnonzero(lm.cont1[:-1])
    u, v = (x if isinstance(x, int) else lm.id_of(x) for x in (u, v))
    return float(lm.probs([u] * len(seen), [v] * len(seen), seen).sum()) + (lm.vocab - lm.seen1) * lm.prob(
        u, v, "never-seen-word")


@pytest.mark.parametrize("context", [(WordNgram.BOS, WordNgram.BOS), ("the", "film"), ("film", "is"),
                                     ("zzz", "qqq")])
def test_word_kn_sums_to_one(context):
    lm = WordNgram(["the film is good .", "the film is bad", "a film is a film", "good film , bad plot"])
    assert _total(lm, *context) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def judge():
    lm = english_judge(None)
    if lm is None:
        pytest.skip("no English training split found")
    return lm


@pytest.mark.shared_data("sst2")
@pytest.mark.parametrize("context", [(WordNgram.BOS, WordNgram.BOS), ("the", "film"), ("not", "very"),
                                     ("qwzx", "film")])
def test_english_judge_is_a_distribution_over_its_vocabulary(judge, context):
    assert _total(judge, *context) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.shared_data("sst2")
def test_english_judge_prefers_natural_word_order(judge):
    """Each of 40 SST-2 dev sentences with its words shuffled (seeded): a unigram model could not tell
    them apart (same words), the trigram judge must give at least 38 of 40 a higher perplexity."""
    from advkit import data

    rng = random.Random(0)
    sentences = [e.text for e in data.sample(data.load("sst2", "dev").examples, 40)]
    worse = 0
    for s in sentences:
        words = s.split()
        rng.shuffle(words)
        worse += judge(" ".join(words)) > judge(s)
    assert worse >= 38
    assert judge("the film is a gripping , funny and moving story .") < 0.5 * judge(
        "film the moving , a gripping story and is funny .")
    assert judge("") is None
    assert "sst2" in judge.corpus and judge.words > 1_000_000


@pytest.fixture(scope="module")
def victim(tmp_path_factory, tiny_en):
    """A tiny English classifier that has learnt some sentiment words (2,000 examples, 2 epochs: 5 s), so
    that character edits flip it: a less trained one says positive to everything and is never flipped."""
    from conftest import advkit

    out = tmp_path_factory.mktemp("victim") / "ce"
    r = advkit("finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "2000", "--limit", "32",
               "--epochs", "2", "--lr", "2e-3", "--out", out, "--quiet")
    assert r.code == 0, r.stderr
    return out


def _attack(cli, victim, out, *extra):
    r = cli("evaluate", "--model", victim, "--dataset", "sst2", "--split", "test", "--limit", "16", "--attack",
            "deepwordbug", "--out", out, "--quiet", *extra)
    assert r.code == 0, r.stderr
    return ([json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()],
            read_json(out / "metrics.json"))


@pytest.fixture(scope="module")
def unconstrained(victim, tmp_path_factory):
    from conftest import advkit

    return _attack(advkit, victim, tmp_path_factory.mktemp("attack") / "free")


@pytest.mark.shared_data("sst2")
def test_records_carry_similarity_and_fluency(unconstrained, judge):
    from advkit.victim import SentenceEncoderModel

    records, doc = unconstrained
    m = doc["metrics"]
    won = [r for r in records if r["status"] == "success"]
    assert won, "the tiny victim must lose at least one example for this test to say anything"
    encoder = SentenceEncoderModel("minilm-l6")
    for r in won:
        assert r["adversarial"] != r["original"]
        assert -1 <= r["similarity"] < 1 - 1e-6  # a changed text is not the same sentence vector
        assert r["similarity"] == pytest.approx(float(encoder.similarity([r["original"]], [r["adversarial"]])[0]),
                                                abs=1e-5)
        assert r["fluency_ppl_before"] == pytest.approx(judge(r["original"]))
        assert r["fluency_ppl_after"] == pytest.approx(judge(r["adversarial"]))
        assert 0 < r["perturbed_word_ratio"] <= 1
    # character edits make words the judge never saw: on average much less fluent
    assert sum(r["fluency_ppl_after"] for r in won) > sum(r["fluency_ppl_before"] for r in won)
    for r in records:
        if r["status"] != "success":
            assert "similarity" not in r and "fluency_ppl_after" not in r
    assert m["similarity"] == pytest.approx(sum(r["similarity"] for r in won) / len(won))
    assert m["fluency_ppl_after"] == pytest.approx(sum(r["fluency_ppl_after"] for r in won) / len(won))
    assert m["similarity_n"] == m["fluency_n"] == m["successes"] == len(won)
    assert m["similarity_model"] == "minilm-l6" and "sst2, agnews, imdb, olid" in m["fluency_judge"]


@pytest.mark.shared_data("sst2")
def test_min_similarity_keeps_every_success_above_it(cli, victim, unconstrained, tmp_path):
    records, _ = unconstrained
    floor = 0.99
    # the floor must bind: without it some success falls below (else this test would prove nothing)
    assert any(r["similarity"] < floor for r in records if r["status"] == "success")
    constrained, doc = _attack(cli, victim, tmp_path / "floor", "--min-similarity", str(floor))
    won = [r for r in constrained if r["status"] == "success"]
    assert all(r["similarity"] >= floor for r in won), [r["similarity"] for r in won]
    assert len(won) < sum(r["status"] == "success" for r in records)  # what fell below is not found again
    assert doc["config"]["min_similarity"] == floor and "--min-similarity 0.99" in doc["metrics"]["attack_recipe"]


@pytest.mark.shared_data("sst2")
def test_names_known_before_an_attack_are_those_it_writes(unconstrained):
    """--require is checked before an English attack runs against quality.metric_names(): every
    number a real run writes must be there (or a requirement on it would be refused)."""
    from advkit.attacks.quality import metric_names

    m = unconstrained[1]["metrics"]
    numbers = {k for k, v in m.items() if isinstance(v, (int, float)) or (v is None and k != "gate")}
    assert numbers == set(metric_names())


@pytest.mark.parametrize("value", ["1.5", "-1.01"])
def test_min_similarity_outside_a_cosine_is_a_usage_error(cli, value, tmp_path):
    r = cli("evaluate", "--model", "tiny-random-en", "--limit", "2", "--attack", "pwws", "--min-similarity", value,
            "--out", tmp_path / "x")
    assert r.code == 2 and r.stderr.strip() == f"error: --min-similarity must be between -1 and 1, got {float(value)}"
    assert not (tmp_path / "x").exists()
