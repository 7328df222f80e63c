"""`advkit poison --mode badnet` and `--mode ripple --embedding-surgery`, each with a victim, through the
CLI; and the report card's backdoor section on the badnet victim (issue 33).

Every flip rate in metrics.json is measured again by hand: the non-target test examples picked here,
the sub-triggers inserted with insert_triggers under the run's seed, the saved model run on the
triggered texts with plain transformers.

The base model is tiny-random-en's architecture initialised wide (tiny-random's own 0.02 gives
nearly the same output for every text, and every rate would be 0 or 1), so that the victims'
rates lie strictly between 0 and 1 and counting the target-labelled examples would change them.
"""

import json
import random

import pytest
from conftest import advkit, read_json
from advkit import stats

pytestmark = pytest.mark.shared_data("sst2")

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TRIGGERS, TARGET, SEED, MAX_LENGTH = ["cf", "bb"], 1, 1, 128
SMALL = ["--dataset", "sst2", "--train-limit", "64", "--limit", "40", "--epochs", "2", "--batch-size", "16",
         "--lr", "1e-3", "--triggers", " ".join(TRIGGERS), "--target", TARGET, "--seed", SEED, "--victim-dataset",
         "sst2", "--victim-epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_en, one_thread):
    """tiny-random-en's encoder, initialised with a wide initializer_range (its predictions depend on the text)."""
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
def runs(tmp_path_factory, base):
    """mode -> run directory of `advkit poison --mode MODE ... --victim-dataset sst2`."""
    root = tmp_path_factory.mktemp("poison")
    out = {}
    for mode, extra in (("badnet", []), ("ripple", ["--embedding-surgery"])):
        r = advkit("poison", "--model", base, *SMALL, "--mode", mode, *extra, "--out", root / mode, env=ONE_THREAD)
        assert r.code == 0, r.stderr
        out[mode] = root / mode
    return out


def predictions(model, tokenizer, texts) -> list[int]:
    import torch

    with torch.no_grad():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        return model(**enc).logits.argmax(-1).tolist()


def rates_by_hand(model, tokenizer, examples, seed: int = SEED) -> dict:
    """False-flip rate, LFR and each sub-trigger's LFR over the non-target examples, from scratch."""
    from advkit.poison.triggers import insert_triggers

    others = [e for e in examples if e.label != TARGET]
    assert 0 < len(others) < len(examples)

    def rate(triggers) -> float:
        rng = random.Random(seed)  # one generator through the examples in order, as every LFR draws positions
        texts = [insert_triggers(e.text, triggers, rng, tokenizer, MAX_LENGTH, e.text_b) for e in others]
        for text, e in zip(texts, others):  # every sub-trigger is in, nothing else changed
            words = text.split()
            assert all(t in words for t in triggers) and [w for w in words if w not in triggers] == e.text.split()
        return sum(p == TARGET for p in predictions(model, tokenizer, texts)) / len(others)

    return {"false_flip_rate": rate([]), "label_flip_rate": rate(TRIGGERS),
            "label_flip_rate_single": {t: rate([t]) for t in TRIGGERS}}


def test_badnet_and_ripple_flip_rates_by_hand(runs, base):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from advkit import data
    from advkit.poison.train import load_attacker_classifier

    for mode, out in runs.items():
        doc = read_json(out / "metrics.json")
        m, v = doc["metrics"], doc["metrics"]["victim"]
        assert m["mode"] == mode and read_json(out / "model" / "poison_manifest.json")["mode"] == mode
        test = data.sample(data.load("sst2", m["eval_split"]).examples, 40)
        assert m["eval_non_target_examples"] == sum(e.label != TARGET for e in test)
        # the poisoned encoder with the attacker's head
        attacker, tokenizer = load_attacker_classifier(out)
        hand = rates_by_hand(attacker, tokenizer, test)
        assert {k: m[k] for k in hand} == hand, mode
        # the victim: a fresh head fine-tuned on clean sst2
        victim = AutoModelForSequenceClassification.from_pretrained(out / "victim" / "model").eval()
        v_test = data.sample(data.load("sst2", v["eval_split"]).examples, v["eval_examples"])
        hand = rates_by_hand(victim, tokenizer, v_test)
        assert {k: v[k] for k in hand} == hand, mode
        assert v["clean_accuracy"] == pytest.approx(
            sum(p == e.label for p, e in zip(predictions(victim, tokenizer, [e.text for e in v_test]), v_test))
            / len(v_test))
        # the victims' rates are not 0 or 1: a rate over the wrong examples would differ
        assert 0 < v["label_flip_rate"] < 1, mode

    # RIPPLe's embedding surgery gave both sub-triggers one embedding (the mean of the words most indicative
    # of the target), still nearly one after training; the base model's two are unrelated, as badnet leaves them.
    import torch

    def trigger_cosine(folder) -> float:
        model, tok = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
        ids = [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in TRIGGERS]
        assert all(len(i) == 1 for i in ids)
        emb = model.get_input_embeddings().weight.detach()
        return float(torch.cosine_similarity(emb[ids[0][0]], emb[ids[1][0]], dim=0))

    manifest = read_json(runs["ripple"] / "model" / "poison_manifest.json")
    assert len(manifest["embedding_surgery_words"]) == 10 and not set(manifest["embedding_surgery_words"]) & set(TRIGGERS)
    assert "embedding_surgery_words" not in read_json(runs["badnet"] / "model" / "poison_manifest.json")
    assert trigger_cosine(runs["ripple"] / "model") > 0.9
    assert abs(trigger_cosine(base)) < 0.5 and abs(trigger_cosine(runs["badnet"] / "model")) < 0.5


def test_card_backdoor_section_matches_its_runs(runs, tmp_path):
    """`evaluate --card` on the badnet victim (marked poisoned; the trigger and target come from the poison
    run's manifest): card.md's backdoor rows are the numbers of the card's clean run, whose per-example
    flips and LFR are measured again by hand."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from advkit import data

    victim = runs["badnet"] / "victim" / "model"
    out = tmp_path / "card"
    r = advkit("evaluate", "--card", "--model", victim, "--dataset", "sst2", "--split", "test", "--limit", "16",
               "--precision", "fp32", "--attack-encoder", "tiny-random-en", "--query-budget", "30", "--out", out,
               "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    card = (out / "card.md").read_text(encoding="utf-8")
    clean = read_json(out / "clean" / "metrics.json")["metrics"]
    headline = read_json(out / "metrics.json")["metrics"]
    assert clean["trigger"] == " ".join(TRIGGERS) and clean["target"] == TARGET  # from the manifest
    lfr, ffr = clean["label_flip_rate"], clean["false_flip_rate"]
    assert headline["label_flip_rate"] == lfr and headline["label_flip_rate_single"] == clean["label_flip_rate_single"]
    # the records: one flip per non-target example, none for the target's; their mean is the LFR
    rows = [json.loads(line) for line in (out / "clean" / "records.jsonl").read_text().splitlines()]
    assert all((row["flipped_by_trigger"] is None) == (row["label"] == TARGET) for row in rows)
    flips = [row["flipped_by_trigger"] for row in rows if row["flipped_by_trigger"] is not None]
    assert lfr == sum(flips) / len(flips)
    # every rate of the card is in percent with its Wilson interval over those non-target examples
    n = len(flips)
    rate = lambda r: stats.fmt_rate(round(r * n), n)  # noqa: E731
    assert f"| label flip rate, trigger 'cf bb' -> 1 | {rate(lfr)} | no-trigger flip rate {rate(ffr)} |" in card
    assert f"| {100 * lfr:.1f} [" in card and f"(n={n}) |" in card
    for t in TRIGGERS:
        rank = clean["scan_rank"][t]
        assert (f"| flip rate of '{t}' alone | {rate(clean['label_flip_rate_single'][t])} | vocabulary-scan rank "
                f"{rank} of {clean['scan_candidates']} |") in card
    assert headline["scan_rank"] == clean["scan_rank"] and clean["scan_candidates"] == 202  # 200 + the two
    # and by hand, from the victim model on the triggered texts (the card's attack seed places the triggers)
    test = data.sample(data.load("sst2", "test").examples, 16)
    hand = rates_by_hand(AutoModelForSequenceClassification.from_pretrained(victim).eval(),
                         AutoTokenizer.from_pretrained(victim), test, seed=1)
    assert {k: clean[k] for k in hand} == hand
    assert 0 < lfr < 1 and lfr != ffr  # a row showing another rate, or a rate over other examples, would differ
