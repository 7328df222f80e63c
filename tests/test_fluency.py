"""The character trigram fluency judge (advkit.fluency.CharNgram): Kneser-Ney by hand, a proper
distribution, and corrupted Chinese text scored less fluent than the original (issue 18)."""

import math
import random

import pytest

from advkit.fluency import CharNgram

B, E = CharNgram.BOS, CharNgram.EOS


def test_kneser_ney_by_hand():
    """Corpus ab, ab, ac (D = 0.75): trigram counts {BBa: 3, Bab: 2, ab$: 2, Bac: 1, ac$: 1}; continuation
    counts N1+(.ab) = 1, N1+(.a.) = 2 over 2 types; unigram continuations a 1, b 1, c 1, $ 2 of 5, vocabulary 4 + 1.
    P1(b) = 0.25/5 + 0.75*4/5/5 = 0.17; P2(b|a) = 0.25/2 + 0.75*2/2*0.17 = 0.2525;
    P3(b|Ba) = 1.25/3 + 0.75*2/3*0.2525 = 0.5429166..."""
    lm = CharNgram(["ab", "ab", "ac"])
    assert lm.prob(B, "a", "b") == pytest.approx(1.25 / 3 + 0.75 * 2 / 3 * 0.2525)
    assert lm.prob("x", "a", "b") == pytest.approx(0.2525)  # unseen context xa: back off to P2
    assert lm.prob("x", "y", "b") == pytest.approx(0.17)
    text = "ab"
    logp = math.log(lm.prob(B, B, "a")) + math.log(lm.prob(B, "a", "b")) + math.log(lm.prob("a", "b", E))
    assert lm(text) == pytest.approx(math.exp(-logp / 3))
    assert lm("") is None


@pytest.mark.parametrize("context", [(B, B), ("很", "好"), ("好", "吃"), ("猫", "狗")])
def test_a_distribution_over_the_characters_and_the_unseen(context):
    lm = CharNgram(["这家店很好吃", "很好，很干净", "不好吃", "房间很好"])
    seen = sum(lm.prob(*context, w) for w in lm.cont1)
    unseen_one = lm.prob(*context, "\uffff")  # every unseen character gets the same share
    assert seen + (lm.vocab - len(lm.cont1)) * unseen_one == pytest.approx(1.0)


@pytest.mark.shared_data("chnsenticorp")
def test_corrupted_reviews_score_less_fluent():
    """Three characters of each of 40 dev reviews replaced by common characters at random: the judge
    (counted on the training split) scores at least 36 of the 40 corrupted texts above their originals."""
    from advkit import data

    lm = CharNgram([e.text for e in data.load("chnsenticorp", "train").examples])
    rng = random.Random(0)
    common = "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
    worse = 0
    for e in data.sample(data.load("chnsenticorp", "dev").examples, 40):
        text = list(e.text[:60])
        cjk = [i for i, c in enumerate(text) if "\u4e00" <= c <= "\u9fff"]
        for i in rng.sample(cjk, min(3, len(cjk))):
            text[i] = rng.choice(common)
        worse += lm("".join(text)) > lm(e.text[:60])
    assert worse >= 36
