"""Adversarial training (`finetune --method at`, after A2T): the attack that feeds it, and the CLI run."""

import pytest
import torch

from advkit import data, hf, models
from advkit.assets import NLTK_ENGLISH_STOPWORDS
from advkit.finetune import adversarial
from advkit.knn_bert.encoder import FinetuneModel
from conftest import advkit, read_json

SENTENCES = ["a charming and often affecting journey", "the movie is a bore from start to finish",
             "an intelligent , funny film with great acting", "dull , lifeless and painfully slow",
             "it is a gorgeous and moving story", "the plot makes no sense and the jokes fall flat",
             "a bright , fresh comedy", "tedious and badly written", "one of the best films of the year",
             "a sad waste of good actors", "warm , witty and wise", "the worst movie i have seen"]


def test_synonyms_come_from_wordnet_never_stop_words_nor_the_word_itself():
    good = adversarial.synonyms("good")
    assert good and "good" not in good and all(w.isalpha() for w in good)
    assert len(good) <= adversarial.MAX_SYNONYMS
    assert adversarial.synonyms("Good") == tuple(w.capitalize() for w in good)  # the word's case kept
    for stop in ("the", "not", "and", "very"):
        assert stop in NLTK_ENGLISH_STOPWORDS and adversarial.synonyms(stop) == ()
    assert adversarial.synonyms(",") == () and adversarial.synonyms("x2") == ()


@pytest.fixture(scope="module")
def tiny_net(one_thread):
    torch.manual_seed(0)
    classifier, tokenizer, _ = models.load_classifier("tiny-random-en", num_labels=2, label_names=["neg", "pos"])
    net = FinetuneModel(classifier, "mean").eval()
    # A random model leans to one class everywhere; centre its margin on these sentences so that they
    # lie near the boundary, where a single swap can flip them (as for a model mid-training).
    with torch.no_grad():
        logits, _, _ = net(hf.encode(tokenizer, SENTENCES, None, 32, "cpu"), represent=False)
        classifier.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).quantile(0.5)  # between two: no ties
    return net.train(), tokenizer


def predict(net, tokenizer, texts):
    with torch.no_grad():
        logits, _, _ = net(hf.encode(tokenizer, texts, None, 32, "cpu"), represent=False)
    return logits.argmax(-1).tolist()


def test_attack_returns_only_flips_within_the_budget_and_leaves_no_gradient(tiny_net):
    net, tokenizer = tiny_net
    net.eval()
    now = predict(net, tokenizer, SENTENCES)
    net.train()
    # Labels: the model's own predictions, so that every example is one it gets right and is attacked.
    batch = [data.Example(t, y) for t, y in zip(SENTENCES, now)]
    found, outcome = adversarial.attack(net, tokenizer, batch, queries=30, max_length=32, device="cpu")
    assert net.training  # the search ran with dropout off and gave the mode back
    assert all(p.grad is None for p in net.parameters())
    assert outcome.attacked == len(batch) and outcome.succeeded == len(found) > 0
    assert outcome.queries <= 30 * outcome.attacked
    net.eval()
    originals = {t: y for t, y in zip(SENTENCES, now)}
    for adv, flipped in zip(found, predict(net, tokenizer, [e.text for e in found])):
        assert flipped != adv.label  # every returned example fools the model ...
        source = next(t for t in SENTENCES if len(t.split()) == len(adv.text.split())
                      and sum(a != b for a, b in zip(t.split(), adv.text.split())) <= 2
                      and originals[t] == adv.label)  # ... keeps its true label, and changes at most 2 words
        changed = [(a, b) for a, b in zip(source.split(), adv.text.split()) if a != b]
        assert 1 <= len(changed) <= max(adversarial.MIN_WORDS, int(adversarial.MAX_RATE * len(source.split())))
        for old, new in changed:
            assert old not in NLTK_ENGLISH_STOPWORDS and new in adversarial.synonyms(old)
    net.train()


def test_examples_the_model_gets_wrong_are_not_attacked(tiny_net):
    net, tokenizer = tiny_net
    net.eval()
    now = predict(net, tokenizer, SENTENCES)
    net.train()
    wrong = [data.Example(t, 1 - y) for t, y in zip(SENTENCES, now)]
    found, outcome = adversarial.attack(net, tokenizer, wrong, queries=30, max_length=32, device="cpu")
    assert found == [] and outcome.attacked == 0 and outcome.queries == 0


AT = ["--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "64", "--limit", "24", "--epochs", "2",
      "--batch-size", "16", "--max-length", "32", "--pooling", "mean", "--quiet"]


def test_finetune_at_trains_on_adversarial_examples_after_the_warm_up(tmp_path):
    out = tmp_path / "at"
    r = advkit("finetune", "--method", "at", *AT, "--adv-ratio", "0.5", "--adv-queries", "20", "--out", out)
    assert r.code == 0, r.stderr
    m = read_json(out / "metrics.json")["metrics"]
    log = m["adversarial_training"]
    assert (log["ratio"], log["warmup_epochs"], log["query_budget"]) == (0.5, 1, 20)
    assert "1" not in log["per_epoch"]  # the clean warm-up epoch attacks nothing
    second = log["per_epoch"]["2"]
    assert 0 < second["attacked"] <= 64 // 2  # half of each batch at most (those the model got right)
    assert 0 <= second["succeeded"] <= second["attacked"] and second["queries"] <= 20 * second["attacked"]
    # A model every command reads: evaluate scores it and agrees with the run's records.
    r = advkit("evaluate", "--model", out / "model", "--dataset", "sst2", "--split", "dev", "--limit", "24",
               "--max-length", "32", "--quiet", "--out", tmp_path / "ev")
    assert r.code == 0, r.stderr
    assert read_json(tmp_path / "ev" / "metrics.json")["metrics"]["accuracy"] == pytest.approx(m["eval_accuracy"])


@pytest.mark.parametrize("flag, value, needle", [("--adv-ratio", "1.5", "--adv-ratio must be between 0 and 1"),
                                                 ("--adv-queries", "0", "--adv-queries must be positive"),
                                                 ("--adv-warmup", "-1", "--adv-warmup must be 0 or more")])
def test_bad_adversarial_settings_are_one_line_and_exit_2(tmp_path, flag, value, needle):
    r = advkit("finetune", "--method", "at", *AT, flag, value, "--out", tmp_path / "x")
    assert r.code == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x").exists()

