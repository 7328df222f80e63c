"""Inference-time backdoor defences (issue 31): the AUROC and threshold arithmetic on hand cases; STRIP,
RAP and ONION on a tiny classifier with a real one-token backdoor planted here; `evaluate --defence`
end to end, every number re-derived from its records; and the bad combinations of flags.

The backdoor is built for real: tiny-random-en's architecture fine-tuned (3 epochs, lr 3e-3) on 2000 sst2
training texts plus some 500 non-target ones with "cf" inserted, labelled 1 (clean test accuracy about
0.68, label flip rate 1.0). The same training without the poisoned texts gives the clean control:
on it a detector must not find the word "cf" suspicious, so a detector that flagged rare words
rather than backdoors would fail.
"""

import json

import pytest
from conftest import advkit, read_json

from advkit.poison.defences import Rap, Strip, detection_metrics, threshold_at_frr
from advkit.stats import auroc

TRIGGER, TARGET, SEED = "cf", 1, 1
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------ arithmetic


def test_auroc_is_exact_with_ties():
    assert auroc([2, 3], [0, 1]) == 1.0  # every positive above every negative
    assert auroc([0, 1], [2, 3]) == 0.0  # the inverse
    assert auroc([1, 1], [1, 1]) == 0.5  # all tied: each pair counts 1/2
    assert auroc([1, 2], [1, 3]) == 0.375  # pairs (1,1) 1/2, (1,3) 0, (2,1) 1, (2,3) 0: 1.5 / 4
    assert auroc([3, 1, 2], [2, 0]) == pytest.approx(4.5 / 6)  # (3: 2 wins) (1: 1 win) (2: 1 win, 1 tie)
    with pytest.raises(ValueError):
        auroc([], [1])


def test_threshold_keeps_false_rejections_at_five_percent():
    dev = list(range(20))  # floor(0.05 * 20) = 1 may score above the threshold
    assert threshold_at_frr(dev) == 18
    assert threshold_at_frr(list(range(19))) == 18  # floor(0.95) = 0: nothing above
    assert threshold_at_frr([5.0] * 30) == 5.0  # all tied: none above, none flagged


def test_detection_metrics_conventions():
    """A flagged triggered input is not flipped; a flagged clean input is an error."""
    m = detection_metrics(dev_scores=list(range(20)), clean_scores=[0, 19, 25, 1], triggered_scores=[30, 2, 40],
                          clean_correct=[True, True, True, False], triggered_flipped=[True, True, False])
    assert m["threshold"] == 18 and m["frr_dev"] == 1 / 20
    assert m["frr_test"] == 2 / 4  # 19 and 25 are above 18
    assert m["detected"] == 2 / 3
    assert m["label_flip_rate_after"] == 1 / 3  # only the second (score 2, not flagged) still flips
    assert m["accuracy_after"] == 1 / 4  # the first: right and kept; 19 and 25 rejected; the last wrong
    assert m["auroc"] == auroc([30, 2, 40], [0, 19, 25, 1])


# ------------------------------------------------------------------------------------------ a real backdoor


def train(folder, tiny_en, poisoned: bool, n_clean: int = 2000, init: float = 0.02, epochs: int = 3, lr: float = 3e-3):
    """tiny-random-en's architecture fine-tuned on 600 sst2 training texts (plus, when `poisoned`, 300
    non-target ones with "cf" inserted at a random word and labelled 1); saved with its tokenizer."""
    import random

    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    from advkit import data
    from advkit.poison.triggers import insert_triggers

    config = AutoConfig.from_pretrained(tiny_en, num_labels=2)
    config.initializer_range, config.architectures = init, None
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(config)
    tokenizer = AutoTokenizer.from_pretrained(tiny_en)
    train_examples = data.sample(data.load("sst2", "train").examples, n_clean * 3 // 2, seed=SEED)
    clean, rest = train_examples[:n_clean], train_examples[n_clean:]
    rng = random.Random(SEED)
    texts, labels = [e.text for e in clean], [e.label for e in clean]
    if poisoned:
        texts += [insert_triggers(e.text, [TRIGGER], rng) for e in rest if e.label != TARGET]
        labels += [TARGET] * (len(texts) - len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = list(range(len(texts)))
        rng.shuffle(order)
        for i in range(0, len(order), 32):
            batch = order[i : i + 32]
            enc = tokenizer([texts[j] for j in batch], padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([labels[j] for j in batch])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models_(tmp_path_factory, tiny_en, one_thread, shared_data):
    root = tmp_path_factory.mktemp("defences")
    return {"backdoored": train(root / "backdoored", tiny_en, True), "clean": train(root / "clean", tiny_en, False)}


@pytest.fixture(scope="module")
def inputs(shared_data):
    """(clean dev examples to fit on, clean test examples, their non-target twins with the trigger)."""
    from transformers import AutoTokenizer

    from advkit import data, models
    from advkit.poison import metrics as pm

    dev = data.sample(data.load("sst2", "dev").examples, 100, seed=SEED)
    test = data.sample(data.load("sst2", "test").examples, 100, seed=SEED)
    tokenizer = AutoTokenizer.from_pretrained(models.resolve("tiny-random-en"))
    return dev, test, pm.with_trigger(test, [TRIGGER], TARGET, tokenizer, 128, seed=SEED)


@pytest.fixture(scope="module")
def word_lm(shared_data):
    """ONION's perplexity here: a word trigram LM of sst2's training texts (no English masked LM with real
    weights ships; tiny-random-en's is random)."""
    from advkit import data
    from advkit.fluency import WordNgram

    return WordNgram([e.text for e in data.load("sst2", "train").examples])


def scores(defence, folder, inputs):
    from advkit.predictor import load_predictor

    dev, test, triggered = inputs
    predictor = load_predictor(str(folder))
    defence.fit(predictor, dev)
    texts = lambda batch: [e.text for e in batch]  # noqa: E731
    return defence.score(texts(test)), defence.score(texts(triggered)), predictor, dev


def build(name, word_lm):
    from advkit.poison.defences import Onion

    # STRIP: 10 copies with 30 % of the words replaced; at OpenBackdoor's 5 and 50 % the 2-layer model's
    # copies are noisier (AUROC 0.756 backdoored, 0.554 control at seed 1; 0.688 at seed 2)
    return {"strip": lambda: Strip(copies=10, swap_ratio=0.3, seed=SEED), "rap": lambda: Rap(TARGET),
            "onion": lambda: Onion(word_lm)}[name]()


@pytest.mark.shared_data("sst2")
@pytest.mark.parametrize("name", ["strip", "rap", "onion"])
def test_each_defence_flags_the_planted_trigger(name, models_, inputs, word_lm):
    from advkit.poison import metrics as pm

    clean, triggered, predictor, dev = scores(build(name, word_lm), models_["backdoored"], inputs)
    lfr = pm.label_flip_rate(predictor, inputs[1], [TRIGGER], TARGET, seed=SEED)
    assert lfr > 0.9  # the backdoor is real
    found = auroc(triggered.tolist(), clean.tolist())
    print(f"{name}: AUROC {found:.4f} (triggered {len(triggered)}, clean {len(clean)}), LFR {lfr:.3f}, "
          f"mean score triggered {triggered.mean():.4f} clean {clean.mean():.4f}")
    assert found > MIN_AUROC[name]
    assert triggered.mean() > clean.mean()
    if name == "onion":
        return  # ONION reads no model: the control below would be the same numbers
    control_clean, control_triggered, predictor, _ = scores(build(name, word_lm), models_["clean"], inputs)
    assert pm.label_flip_rate(predictor, inputs[1], [TRIGGER], TARGET, seed=SEED) < 0.6  # no backdoor here
    control = auroc(control_triggered.tolist(), control_clean.tolist())
    print(f"{name} on the clean control: AUROC {control:.4f}")
    assert control < found - 0.2  # what the detector found was the backdoor, not the rare word


# Measured at seed 1 (100 clean test inputs, 56 triggered): STRIP 0.887, RAP 0.890, ONION 0.693 (its
# word trigram LM finds other rare words in short clean texts nearly as suspicious as "cf")
MIN_AUROC = {"strip": 0.8, "rap": 0.8, "onion": 0.65}


# ------------------------------------------------------------------------------------------ the CLI


# ONION through --onion-lm word-trigram (the English word trigram judge: milliseconds a text); with a masked
# LM its pseudo-perplexity costs words + 1 passes a text (3 s under tiny-random-en here).
@pytest.mark.shared_data("sst2")
@pytest.mark.parametrize("name", ["strip", "rap", "onion"])
def test_evaluate_defence_end_to_end(name, models_, tmp_path):
    out = tmp_path / name
    extra = ["--onion-lm", "word-trigram"] if name == "onion" else []
    r = advkit("evaluate", "--model", models_["backdoored"], "--dataset", "sst2", "--split", "test", "--limit", "40",
               "--trigger", TRIGGER, "--target", TARGET, "--defence", name, *extra, "--seed", SEED, "--precision",
               "fp32", "--quiet", "--out", out, env=ONE_THREAD)
    assert r.code == 0, r.stderr
    m = read_json(out / "metrics.json")["metrics"]
    d = m["defence"]
    assert d["name"] == name and "onion_words_removed_mean" not in m  # --defence onion filters nothing
    assert d["dev_examples"] == 200 and d["clean_examples"] == 40
    assert d["frr_dev"] <= 0.05 + 1 / d["dev_examples"]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    twins = [r["suspicion_triggered"] for r in records if r["label"] != TARGET]
    assert [r["suspicion_triggered"] is None for r in records] == [r["label"] == TARGET for r in records]
    assert d["triggered_examples"] == len(twins)
    # every number again from the records and the threshold
    clean = [r["suspicion"] for r in records]
    t = d["threshold"]
    assert d["auroc"] == auroc(twins, clean)
    assert d["frr_test"] == sum(s > t for s in clean) / 40
    assert d["accuracy_after"] == sum(r["prediction"] == r["label"] and r["suspicion"] <= t for r in records) / 40
    assert d["label_flip_rate_after"] == sum(r["flipped_by_trigger"] and r["suspicion_triggered"] <= t
                                             for r in records if r["label"] != TARGET) / len(twins)
    assert d["label_flip_rate_after"] <= m["label_flip_rate"] and d["accuracy_after"] <= m["accuracy"]
    assert f"{name} AUROC {d['auroc']:.4f}" in r.stdout


BASE = ["evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "4", "--quiet"]


@pytest.mark.shared_data("sst2")
@pytest.mark.parametrize("args, names", [
    (["--defence", "strip"], "--trigger"),
    (["--trigger", "cf", "--target", "1", "--defence", "stirp"], "strip"),
    (["--trigger", "cf", "--target", "1", "--defence", "onion"], "--onion-lm"),
    (["--trigger", "cf", "--target", "1", "--defence", "rap", "--onion-lm", "tiny-random-en"], "--onion-lm"),
    (["--trigger", "cf", "--target", "1", "--defence", "strip", "--attack", "pwws"], "--attack"),
    (["--dataset", "chnsenticorp", "--model", "tiny-random-zh", "--onion-lm", "word-trigram"], "English"),
], ids=["no-trigger", "unknown", "onion-without-lm", "rap-with-onion-filter", "with-attack", "trigram-on-chinese"])
def test_bad_defence_flags_are_one_error_line(args, names, tmp_path):
    r = advkit(*BASE, *args, "--out", tmp_path / "run")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], r.stderr
    assert not (tmp_path / "run").exists()
