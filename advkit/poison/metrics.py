"""Backdoor metrics: label flip rate (full trigger, each sub-trigger, per layer) and a vocabulary scan.

Li et al., *Backdoor Attacks on Pre-trained Models by Layerwise Weight Poisoning*,
EMNLP 2021 (arXiv 2108.13888). The label flip rate (LFR) is measured among the test
samples whose true label is NOT the target: the fraction classified as the target
once the trigger is inserted (target-labelled samples would count as "flipped" for
free). Trigger positions are drawn with a seed, inside the tokens the model sees, so
two models evaluated with the same seed see the same triggered texts.

`victim` below is an `advkit.victim.Victim` or any predictor with `predict_proba(texts, texts_b)`;
its `tokenizer` and `max_length`, when present, keep trigger positions inside the window.
"""

from __future__ import annotations

import random

from advkit.data import Example
from advkit.poison.layers import layer_logits
from advkit.poison.triggers import insert_triggers
from advkit.progress import track


def flip_rate(predictions, labels, target: int) -> float:
    """Among samples whose true label is not `target`, the fraction predicted `target`."""
    pairs = [(p, y) for p, y in zip(predictions, labels) if y != target]
    if not pairs:
        raise ValueError(f"flip rate of no samples: every label is the target {target}")
    return sum(int(p == target) for p, _ in pairs) / len(pairs)


def non_target(examples, target: int) -> list[Example]:
    return [e for e in examples if e.label != target]


def with_trigger(examples, triggers, target: int, tokenizer=None, max_length: int | None = None,
                 seed: int = 0) -> list[Example]:
    """The non-target samples with every sub-trigger of `triggers` inserted (labels kept)."""
    rng = random.Random(seed)
    return [Example(insert_triggers(e.text, triggers, rng, tokenizer, max_length, e.text_b), e.label, e.text_b)
            for e in non_target(examples, target)]


def predict(victim, examples, chunk: int = 256, description: str | None = "predicting") -> list[int]:
    """Predicted labels; no progress bar when `description` is None (inside another bar)."""
    out = []
    chunks = range(0, len(examples), chunk)
    for i in (track(chunks, description, total=len(chunks)) if description else chunks):
        part = examples[i : i + chunk]
        texts_b = [e.text_b for e in part] if part[0].text_b is not None else None
        out.extend(victim.predict_proba([e.text for e in part], texts_b).argmax(-1).tolist())
    return out


def false_flip_rate(victim, examples, target: int) -> float:
    """The same rate without any trigger: the floor an LFR is compared with."""
    samples = non_target(examples, target)
    return flip_rate(predict(victim, samples), [e.label for e in samples], target)


def _window(victim) -> tuple:
    return getattr(victim, "tokenizer", None), getattr(victim, "max_length", None)


def label_flips(victim, examples, triggers, target: int, seed: int = 0) -> list[bool | None]:
    """Per example, whether the full trigger flips it to `target` (None for target-labelled examples,
    which the LFR leaves out): what paired tests of two models' LFRs on the same examples read."""
    samples = with_trigger(examples, triggers, target, *_window(victim), seed)
    flips = iter(p == target for p in predict(victim, samples, description=f"LFR '{' '.join(triggers)}'"))
    return [None if e.label == target else next(flips) for e in examples]


def label_flip_rate(victim, examples, triggers, target: int, seed: int = 0) -> float:
    """LFR with every sub-trigger of `triggers` inserted (the full combination)."""
    flips = [f for f in label_flips(victim, examples, triggers, target, seed) if f is not None]
    if not flips:
        raise ValueError(f"flip rate of no samples: every label is the target {target}")
    return sum(flips) / len(flips)


def label_flip_rate_single(victim, examples, triggers, target: int, seed: int = 0) -> dict[str, float]:
    """LFR of each sub-trigger inserted alone (should stay near the false-flip rate)."""
    return {t: label_flip_rate(victim, examples, [t], target, seed) for t in triggers}


def _per_layer_predictions(victim, samples, layer_head: str, description: str) -> list[list[int]]:
    """Each encoder layer's predicted labels through the shared head, layer 1 first."""
    import torch

    preds: list[list[int]] = []
    batches = range(0, len(samples), victim.batch_size)
    with torch.inference_mode():
        for i in track(batches, description, total=len(batches)):
            part = samples[i : i + victim.batch_size]
            per_layer, _ = layer_logits(victim.model, victim._encode([e.text for e in part],
                                        [e.text_b for e in part] if part[0].text_b is not None else None),
                                        layer_head)
            if not preds:
                preds = [[] for _ in per_layer]
            for layer, logits in zip(preds, per_layer):
                layer.extend(logits.argmax(-1).tolist())
    return preds


def label_flip_rate_per_layer(victim, examples, triggers, target: int, seed: int = 0,
                              layer_head: str = "cls") -> list[float]:
    """LFR of each encoder layer 1..L through the shared head (the poisoned PTM with its attacker head).

    With no triggers it is each layer's false-flip rate, the floor to compare with.
    """
    samples = with_trigger(examples, triggers, target, victim.tokenizer, victim.max_length, seed)
    preds = _per_layer_predictions(victim, samples, layer_head, "per-layer LFR")
    labels = [e.label for e in samples]
    return [flip_rate(p, labels, target) for p in preds]


def clean_accuracy_per_layer(victim, examples, layer_head: str = "cls") -> list[float]:
    """Accuracy of each encoder layer 1..L through the shared head on the clean examples (every label)."""
    preds = _per_layer_predictions(victim, list(examples), layer_head, "per-layer accuracy")
    labels = [e.label for e in examples]
    return [sum(int(p == y) for p, y in zip(layer, labels)) / len(labels) for layer in preds]


def backdoor_metrics(victim, examples, triggers, target: int, seed: int, per_layer: bool = False,
                     layer_head: str = "cls", flips: list | None = None) -> dict:
    """False-flip rate (no trigger), LFR with the full trigger and with each sub-trigger; with
    `per_layer`, each layer's clean accuracy and both rates through every layer's head (the
    poisoned PTM with its attacker head; `layer_head` as it was trained). `flips`: the full
    trigger's `label_flips`, when the caller keeps them (the LFR is then not predicted again)."""
    flips = [f for f in (flips if flips is not None else label_flips(victim, examples, triggers, target, seed))
             if f is not None]
    if not flips:
        raise ValueError(f"flip rate of no samples: every label is the target {target}")
    m = {"false_flip_rate": false_flip_rate(victim, examples, target),
         "label_flip_rate": sum(flips) / len(flips),
         "label_flip_rate_single": label_flip_rate_single(victim, examples, triggers, target, seed=seed)}
    if per_layer:
        m["clean_accuracy_per_layer"] = clean_accuracy_per_layer(victim, examples, layer_head)
        m["label_flip_rate_per_layer"] = label_flip_rate_per_layer(victim, examples, triggers, target, seed=seed,
                                                                   layer_head=layer_head)
        # The same without a trigger: a layer whose head says "target" for everything is no backdoor.
        m["false_flip_rate_per_layer"] = label_flip_rate_per_layer(victim, examples, [], target, seed=seed,
                                                                   layer_head=layer_head)
    return m


def average_rank(rates: dict, token: str) -> float:
    """1 + the tokens with a strictly higher rate + half the others tied with it: ties counted honestly
    (a token tied with 99 others ranks 50.5, not 1)."""
    mine = rates[token]
    higher = sum(r > mine for r in rates.values())
    tied = sum(r == mine for r in rates.values()) - 1
    return 1 + higher + tied / 2


def vocab_scan(victim, examples, candidates, target: int, triggers=(), seed: int = 0, top: int = 20,
               resamples: int = 1000, texts_per_call: int = 512) -> dict:
    """Single-token vocabulary scan: insert each candidate alone, rank candidates by flip rate.

    The true sub-triggers are added to the candidates; ranks are average ranks (`average_rank`),
    with a 95 % interval from a bootstrap over the scanned examples (the rates of all tokens
    recomputed on each resample). Under torchrun each process scans every world-th token and the
    per-example flips are gathered, so every process returns the same result.
    Returns {"ranks", "rank_intervals", "rates" (of the sub-triggers), "top": [[token, rate], ...],
    "candidates": n, "examples": n}.
    """
    import numpy as np

    from advkit import distributed

    tokens = list(dict.fromkeys([*candidates, *triggers]))
    samples = non_target(examples, target)
    rank_, world = distributed.world()
    # Tokens go to the model in groups of ~`texts_per_call` texts sorted by length: bigger, less padded
    # batches than one token's texts alone. Groups are cut from the whole token list before sharding,
    # so every batch, and hence every prediction, is the same on any number of processes.
    size = max(1, texts_per_call // max(1, len(samples)))
    groups = [tokens[i : i + size] for i in range(0, len(tokens), size)]
    flips = {}
    for group in track(groups[rank_::world], "vocabulary scan"):
        texts = []
        for token in group:
            rng = random.Random(seed)  # each token lands where any other would
            texts += [Example(insert_triggers(e.text, [token], rng, *_window(victim), e.text_b), e.label, e.text_b)
                      for e in samples]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i].text))
        predicted = [0] * len(texts)
        for i, p in zip(order, predict(victim, [texts[i] for i in order], description=None)):
            predicted[i] = p
        for j, token in enumerate(group):
            flips[token] = [int(p == target) for p in predicted[j * len(samples) : (j + 1) * len(samples)]]
    flips = distributed.gather_dict(flips)
    matrix = np.array([flips[t] for t in tokens], dtype=np.float32)  # tokens x examples, 1 = flipped
    rates = dict(zip(tokens, (float(x) for x in matrix.mean(1))))
    at = {t: tokens.index(t) for t in triggers}
    draws = {t: [] for t in triggers}
    generator = np.random.default_rng(seed)
    n = matrix.shape[1]
    for _ in range(resamples if triggers else 0):
        weights = np.bincount(generator.integers(0, n, n), minlength=n).astype(np.float32)
        r = matrix @ weights
        for t, i in at.items():
            draws[t].append(1 + float((r > r[i]).sum()) + (float((r == r[i]).sum()) - 1) / 2)
    ordered = sorted(tokens, key=lambda t: (-rates[t], t))
    return {"ranks": {t: average_rank(rates, t) for t in triggers},
            "rank_intervals": {t: [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]
                               for t, d in draws.items()},
            "rates": {t: rates[t] for t in triggers},
            "top": [[t, rates[t]] for t in ordered[:top]], "candidates": len(tokens), "examples": n}


def plot_per_layer(curves: dict[str, list[float]], path, title: str = "",
                   no_trigger: dict[str, list[float]] | None = None,
                   accuracy: dict[str, list[float]] | None = None) -> None:
    """Per-layer LFR: layer on x, LFR on y, one line per mode (PNG, Agg backend).

    `no_trigger`: the per-layer false-flip rates (no trigger inserted), in a second panel;
    `accuracy`: the per-layer clean accuracies, in a first panel (when given).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Two panels, because the triggered curves often all sit at 1.0: left with the trigger, right without
    # (the floor). Nested marker sizes keep overlapping modes visible.
    panels = ([("clean accuracy", accuracy)] if accuracy else []) + [("with the trigger", curves)] + (
        [("no trigger (the floor)", no_trigger)] if no_trigger else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    layers = max((len(v) for v in curves.values()), default=0)
    for ax, (name, data) in zip(axes[0], panels):
        for i, (mode, values) in enumerate(data.items()):
            ax.plot(range(1, len(values) + 1), values, marker="osD^v<>"[i % 7], markersize=max(3, 10 - 2 * i),
                    color=f"C{list(curves).index(mode) if mode in curves else i}", label=mode)
        ax.set_xticks(range(1, layers + 1))
        ax.set_xlabel("encoder layer")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(-0.02, 1.05)
    axes[0][0].set_ylabel("clean accuracy / label flip rate" if accuracy else "label flip rate")
    axes[0][-1].legend(fontsize=8, loc="center right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
