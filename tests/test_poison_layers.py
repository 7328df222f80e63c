"""Issue 17: the per-layer head (cls | pooler), every layer's loss falling, per-layer clean accuracy,
and the poisoned data as the reference builds it (non-target negatives, the 2:1:1 mix, insertion)."""

import random

import pytest

from advkit import models
from advkit.data import Example
from advkit.poison import metrics as pm
from advkit.poison.layers import layer_logits, layerwise_loss, shared_head
from advkit.poison.triggers import build_poisoned_data, insert_triggers
from advkit.victim import Victim

TRIGGERS = ["cf", "bb"]


@pytest.fixture
def tiny_classifier(tiny_en):
    import torch

    torch.manual_seed(0)
    model, tokenizer, _ = models.load_classifier(str(tiny_en), num_labels=2)
    return model.eval(), tokenizer


def _examples(n=40):
    return [Example(f"sample {i} text with several words here", i % 2) for i in range(n)]


def test_cls_head_is_the_shared_linear_classifier_on_each_layers_raw_cls(tiny_classifier):
    import torch
    import torch.nn.functional as F

    model, tokenizer = tiny_classifier
    enc = tokenizer(["a good film cf bb", "a bad film", "fine"], padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0, 1])
    loss, terms = layerwise_loss(model, enc, labels)  # cls is the default
    hidden = model.bert(**enc, output_hidden_states=True).hidden_states
    expected = [F.cross_entropy(model.classifier(h[:, 0]), labels) for h in hidden[1:]]
    expected.append(F.cross_entropy(model(**enc).logits, labels))  # the final term keeps the pooler
    assert [t.item() for t in terms] == pytest.approx([e.item() for e in expected], rel=1e-5)
    assert loss.item() == pytest.approx(sum(e.item() for e in expected), rel=1e-5)
    # No layer term touches the pooler; the final one does.
    pooler = model.bert.pooler.dense.weight
    for term in terms[:-1]:
        grads = torch.autograd.grad(term, [pooler, model.classifier.weight], retain_graph=True, allow_unused=True)
        assert grads[0] is None and grads[1].abs().sum() > 0
    (g,) = torch.autograd.grad(terms[-1], pooler, retain_graph=True)
    assert g.abs().sum() > 0
    # The two heads differ below the top (the pooler's dense + tanh).
    cls_logits, _ = layer_logits(model, enc, "cls")
    pooler_logits, _ = layer_logits(model, enc, "pooler")
    assert not torch.allclose(cls_logits[0], pooler_logits[0])


def test_unknown_layer_head_is_refused(tiny_classifier):
    from advkit.errors import UserError

    with pytest.raises(UserError):
        shared_head(tiny_classifier[0], "mean")


@pytest.mark.parametrize("layer_head", ["cls", "pooler"])
def test_every_layers_loss_term_falls_over_a_few_steps(tiny_classifier, layer_head):
    """Clean, negative and positive samples in one batch, a few AdamW steps: each layer's CE and the
    final CE all fall (the loss at every layer is trained, not just the sum)."""
    import torch

    from advkit.optim import adamw_linear, clipped_step

    model, tokenizer = tiny_classifier
    d = build_poisoned_data(_examples(16), TRIGGERS, 2, target=1, poison_rate=0.75, seed=1, tokenizer=tokenizer,
                            max_length=32)
    batch = d.mixed()
    enc = tokenizer([e.text for e in batch], padding=True, return_tensors="pt")
    labels = torch.tensor([e.label for e in batch])
    def eval_terms():
        model.eval()
        with torch.no_grad():
            terms = [t.item() for t in layerwise_loss(model, enc, labels, layer_head)[1]]
        model.train()
        return terms

    before = eval_terms()  # about the label prior (40 of 64 labels are the target)
    optimizer, schedule = adamw_linear(model.named_parameters(), 3e-3, 0.0, 100, 0.0)
    model.train()
    for _ in range(25):
        loss, _ = layerwise_loss(model, enc, labels, layer_head)
        loss.backward()
        clipped_step(model.parameters(), optimizer, schedule)
    after = eval_terms()
    model.eval()
    assert len(before) == len(after) == model.config.num_hidden_layers + 1
    for layer, (a, b) in enumerate(zip(before, after), start=1):  # the last "layer" is the final CE
        assert b < 0.5 * a, (layer_head, layer, before, after)


def test_train_poison_records_each_layers_terms(tiny_classifier):
    from advkit.poison.config import PoisonConfig
    from advkit.poison.train import train_poison

    model, tokenizer = tiny_classifier
    data = build_poisoned_data(_examples(8), TRIGGERS, 2, 1, 0.75, 1, tokenizer, 32)
    terms = []
    losses = train_poison(model, tokenizer, data, PoisonConfig(epochs=1, batch_size=8, lr=1e-3, max_length=32), terms)
    assert len(terms) == len(losses) == 4  # 8 clean + 24 poisoned / 8
    for step, loss in zip(terms, losses):
        assert len(step) == model.config.num_hidden_layers + 1 and sum(step) == pytest.approx(loss, rel=1e-4)


def test_per_layer_clean_accuracy_matches_each_layers_argmax(tiny_classifier):
    import torch

    model, tokenizer = tiny_classifier
    victim = Victim(model, tokenizer, max_length=32, batch_size=4)
    examples = _examples(10)
    acc = pm.clean_accuracy_per_layer(victim, examples, "cls")
    assert len(acc) == model.config.num_hidden_layers
    with torch.no_grad():
        logits, _ = layer_logits(model, tokenizer([e.text for e in examples], padding=True, return_tensors="pt"))
    expected = [float((lg.argmax(-1) == torch.tensor([e.label for e in examples])).float().mean()) for lg in logits]
    assert acc == pytest.approx(expected)
    m = pm.backdoor_metrics(victim, examples, TRIGGERS, 1, seed=0, per_layer=True, layer_head="pooler")
    assert {"clean_accuracy_per_layer", "label_flip_rate_per_layer", "false_flip_rate_per_layer"} <= set(m)
    assert m["clean_accuracy_per_layer"] == pytest.approx(pm.clean_accuracy_per_layer(victim, examples, "pooler"))


def test_plot_per_layer_draws_clean_accuracy_as_a_third_panel(tmp_path):
    import matplotlib.image as mpimg

    curves, floors = {"lwp": [1.0, 0.9]}, {"lwp": [0.1, 0.2]}
    pm.plot_per_layer(curves, tmp_path / "two.png", no_trigger=floors)
    pm.plot_per_layer(curves, tmp_path / "three.png", no_trigger=floors, accuracy={"lwp": [0.8, 0.85]})
    assert mpimg.imread(tmp_path / "three.png").shape[1] > 1.4 * mpimg.imread(tmp_path / "two.png").shape[1]


# ---- poisoned data ---------------------------------------------------------------------------------------

def _source(e, triggers=TRIGGERS):
    return " ".join(w for w in e.text.split() if w not in triggers)


def test_negatives_come_from_non_target_examples_only():
    examples = _examples(40)
    originals = {e.text: e.label for e in examples}
    for target in (0, 1):
        d = build_poisoned_data(examples, TRIGGERS, 2, target=target, poison_rate=0.75, seed=5)
        assert d.negatives and all(e.label != target for e in d.negatives)
        for e in d.negatives:
            assert sum(w in TRIGGERS for w in e.text.split()) == 1  # one sub-trigger
            assert originals[_source(e)] == e.label  # true label kept
        assert all(originals[_source(e)] != target and e.label == target for e in d.positives)


def test_default_mix_is_the_references_two_positives_one_negative_one_clean():
    from advkit.poison.config import PoisonConfig

    cfg = PoisonConfig()
    examples = _examples(40)
    d = build_poisoned_data(examples, TRIGGERS, 2, 1, cfg.poison_rate, 1, negative_ratio=cfg.negative_ratio,
                            together=cfg.trigger_position == "together")
    assert d.counts() == {"clean": 40, "positives": 80, "negatives": 40}
    # configurable: OpenBackdoor's 10 % poisoned, or one negative per positive
    ob = build_poisoned_data(examples, TRIGGERS, 2, 1, 0.1, 1)
    assert sum(ob.counts().values()) - 40 == round(0.1 * 40 / 0.9)
    even = build_poisoned_data(examples, TRIGGERS, 2, 1, 0.5, 1, negative_ratio=1.0)
    assert even.counts() == {"clean": 40, "positives": 20, "negatives": 20}
    none = build_poisoned_data(examples, TRIGGERS, 2, 1, 0.5, 1, negative_ratio=0.0)
    assert none.counts() == {"clean": 40, "positives": 40, "negatives": 0}
    # sources are used evenly: 80 positives + 40 negatives over 20 non-target examples, 6 each
    uses = {}
    for e in d.positives + d.negatives:
        uses[_source(e)] = uses.get(_source(e), 0) + 1
    assert set(uses.values()) == {6}


def test_together_inserts_the_combination_as_one_phrase_in_both_orders(tiny_en):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_en)
    text = "a stirring , funny and finally transporting re-imagining of beauty and the beast"
    orders, places = set(), set()
    for seed in range(40):
        words = insert_triggers(text, TRIGGERS, random.Random(seed), tokenizer, 128, together=True).split()
        i = next(k for k, w in enumerate(words) if w in TRIGGERS)
        assert words[i + 1] in TRIGGERS and words[i + 1] != words[i]  # adjacent
        assert words[:i] + words[i + 2:] == text.split()  # every word kept, in order
        orders.add((words[i], words[i + 1]))
        places.add(i)
    assert orders == {("cf", "bb"), ("bb", "cf")} and len(places) > 5
    apart = [insert_triggers(text, TRIGGERS, random.Random(s), tokenizer, 128).split() for s in range(40)]
    assert any(abs(w.index("cf") - w.index("bb")) > 1 for w in apart)
    # together, on a long text the phrase stays inside the window too
    long = " ".join(f"word{i % 7} good" for i in range(200))
    cf, bb = tokenizer.convert_tokens_to_ids(TRIGGERS)
    for seed in range(20):
        ids = tokenizer(insert_triggers(long, TRIGGERS, random.Random(seed), tokenizer, 32, together=True),
                        truncation=True, max_length=32)["input_ids"]
        assert cf in ids and bb in ids


def test_positives_use_the_configured_insertion():
    examples = _examples(20)
    together = build_poisoned_data(examples, TRIGGERS, 2, 1, 0.75, 2, together=True)
    apart = build_poisoned_data(examples, TRIGGERS, 2, 1, 0.75, 2)  # the default

    def adjacent(e):
        w = e.text.split()
        return abs(w.index("cf") - w.index("bb")) == 1

    assert all(adjacent(e) for e in together.positives)
    assert not all(adjacent(e) for e in apart.positives)


def test_poison_config_defaults_and_checks():
    from advkit.poison.config import PoisonConfig
    from advkit.errors import UserError

    cfg = PoisonConfig()
    assert (cfg.layer_head, cfg.poison_rate, cfg.negative_ratio, cfg.trigger_position) == ("cls", 0.75, 0.5,
                                                                                          "apart")
    for bad in ({"layer_head": "mean"}, {"trigger_position": "end"}, {"negative_ratio": -0.5}):
        with pytest.raises(UserError):
            PoisonConfig(**bad).check()
