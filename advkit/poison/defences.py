"""Inference-time backdoor defences, one interface: fitted on clean dev examples with the predictor
they protect, each gives every input a suspicion score (higher = more suspicious).

- `Onion` (Qi et al., EMNLP 2021) as a detector: the largest perplexity drop from removing one word,
  max_i (p_0 - p_i) (advkit.poison.onion filters with the same quantity).
- `Strip` (Gao et al., ACSAC 2019; the text variant OpenBackdoor runs): perturbed copies of the input,
  a share of its words replaced by the highest tf-idf words of held-out clean texts; minus the mean
  prediction entropy of the copies. A trigger keeps forcing its label through the noise (low
  entropy), a clean text's prediction wavers.
- `Rap` (Yang et al., EMNLP 2021, "RAP: Robustness-Aware Perturbations"): the embedding of one rare
  word, inserted at the front, is learnt so that it lowers the protected class's probability of
  clean inputs by 0.1 to 0.3; a triggered input barely moves (the trigger dominates), so a small
  drop is suspicious.

`defend` measures a defence the same way for all: detection AUROC of triggered vs clean test
inputs, a threshold at 5 % false rejections on the clean dev inputs only, and what is left of the
backdoor and of clean accuracy once flagged inputs are rejected.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from advkit.errors import UserError
from advkit.stats import auroc

FRR = 0.05  # false rejections of clean dev inputs the threshold allows
NOT_PROTECTED = -2.0  # RAP's score of an input not predicted as the protected class: below any -drop


class Onion:
    """ONION's word suspicion as a text's score: max over words i of p_0 - p_i, `perplexity` as in
    advkit.poison.onion (`text -> float | None`). A text of fewer than two words, or one the LM
    cannot score, scores 0 (no word can be judged)."""

    name = "onion"

    def __init__(self, perplexity):
        self.perplexity = perplexity

    def fit(self, predictor, dev):  # nothing to learn: the LM is the defence
        return self

    def score_one(self, text: str) -> float:
        from advkit.poison.onion import split_words

        units = split_words(text)
        words = [i for i, u in enumerate(units) if not u.isspace()]
        p0 = self.perplexity(text) if len(words) >= 2 else None
        if p0 is None:
            return 0.0
        drops = [p0 - p for p in (self.perplexity("".join(units[:i] + units[i + 1 :])) for i in words) if p is not None]
        return max(drops, default=0.0)

    def score(self, texts, texts_b=None):
        import numpy as np

        return np.array([self.score_one(t) for t in texts], dtype=float)


class Strip:
    """STRIP for text. Each input gets `copies` perturbed copies: round(`swap_ratio` * words) of its
    word positions (at least one, drawn without replacement) take, in order, the highest tf-idf words
    of one randomly drawn clean dev text (tf-idf over the dev texts, idf = ln((1 + n) / (1 + df)) + 1,
    words ranked within their own text as OpenBackdoor ranks them). Score: minus the mean entropy
    (nats) of the predictions on the copies. Seeded: the same texts get the same copies."""

    name = "strip"

    def __init__(self, copies: int = 5, swap_ratio: float = 0.5, seed: int = 1):
        self.copies, self.swap_ratio, self.seed = copies, swap_ratio, seed

    def fit(self, predictor, dev):
        self.predictor = predictor
        texts = [e.text.split() for e in dev]
        df = Counter(w for words in texts for w in set(words))
        n = len(texts)
        self.pools = []
        for words in texts:
            tf = Counter(words)
            ranked = sorted(tf, key=lambda w: (-tf[w] * (math.log((1 + n) / (1 + df[w])) + 1), w))
            if ranked:
                self.pools.append(ranked)
        if not self.pools:
            raise UserError("--defence strip: the clean dev texts hold no words to perturb with")
        return self

    def perturb(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if not words:
            return text
        pool = self.pools[rng.randrange(len(self.pools))]
        k = max(1, round(self.swap_ratio * len(words)))
        for j, at in enumerate(sorted(rng.sample(range(len(words)), k))):
            words[at] = pool[j % len(pool)]  # a short dev text's words are used again
        return " ".join(words)

    def score(self, texts, texts_b=None):
        import numpy as np

        rng = random.Random(self.seed)
        copies = [self.perturb(t, rng) for t in texts for _ in range(self.copies)]
        copies_b = None if texts_b is None else [b for b in texts_b for _ in range(self.copies)]
        p = np.clip(self.predictor.predict_proba(copies, copies_b), 1e-12, 1.0)  # it batches itself
        entropy = -(p * np.log(p)).sum(axis=1).reshape(len(texts), self.copies)
        return -entropy.mean(axis=1)


class Rap:
    """RAP. `fit` learns the embedding row of `word` (one token of the model's vocabulary; "mb" as in
    OpenBackdoor) on the clean dev inputs labelled `target` (the class a backdoor sends inputs to):
    gradient steps on that row alone, renormalised to its original norm after each, on the hinge
    loss that keeps the drop of p(target) from inserting the word between 0.1 and 0.3
    (`prob_range`, OpenBackdoor's defaults; the paper's lr 1e-2 and 5 epochs). The model is never
    changed: the learnt row replaces the word's embedding in this defence's forward passes only.

    Score: p(target | text) - p(target | word + text) negated, for inputs predicted `target`;
    NOT_PROTECTED (-2, below every other score) for the rest, whose prediction no backdoor has
    turned (the paper checks only inputs predicted as the protected class)."""

    name = "rap"

    def __init__(self, target: int, word: str = "mb", prob_range=(0.1, 0.3), epochs: int = 5, lr: float = 1e-2,
                 batch_size: int = 32):
        self.target, self.word, self.prob_range = target, word, prob_range
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size

    def check(self, predictor):
        """Refuse a predictor RAP cannot learn through, before anything runs."""
        from advkit.knn_bert.predictor import KnnPredictor

        if isinstance(predictor, KnnPredictor) or not hasattr(predictor, "model"):
            raise UserError("--defence rap learns an input embedding through the classifier's gradients; a knn "
                            "run's vote has none (use strip or onion)")
        ids = predictor.tokenizer(self.word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise UserError(f"RAP word '{self.word}' is {len(ids)} tokens for this tokenizer; it must be one")
        self.word_id = ids[0]
        return self

    def fit(self, predictor, dev):
        import torch

        self.check(predictor)
        self.predictor, model = predictor, predictor.model
        start = model.get_input_embeddings().weight[self.word_id].detach().float().clone()
        norm = start.norm()
        protected = [e for e in dev if e.label == self.target]
        if not protected:
            raise UserError(f"--defence rap: no clean dev example has the protected label {self.target}")
        row, low, high = start, *self.prob_range
        for _ in range(self.epochs):
            for i in range(0, len(protected), self.batch_size):
                part = protected[i : i + self.batch_size]
                texts, texts_b = [e.text for e in part], None if part[0].text_b is None else [e.text_b for e in part]
                with torch.no_grad():
                    p = self._probs(texts, texts_b, None)[:, self.target]
                row = row.detach().requires_grad_(True)
                drop = p - self._probs(self.insert(texts), texts_b, row)[:, self.target]
                # the hinge of the paper: push the drop up to `low`, hold it below `high`
                loss = torch.relu(low - drop).mean() + torch.relu(drop - high).mean()
                (grad,) = torch.autograd.grad(loss, row)
                with torch.no_grad():
                    row = row - self.lr * grad
                    row = row * norm / row.norm()  # its norm stays a word's norm, as the paper keeps it
        self.row = row.detach()
        return self

    def insert(self, texts):
        return [f"{self.word} {t}" for t in texts]

    def _probs(self, texts, texts_b, row):
        """p(y | texts) in fp32, the RAP word's embedding replaced by `row` (None: the model's own)."""
        import torch

        from advkit.victim import head_forward, head_pooling

        model = self.predictor.model
        enc = dict(self.predictor._encode(texts, texts_b))
        ids = enc.pop("input_ids")
        embeds = model.get_input_embeddings()(ids)
        if row is not None:
            embeds = torch.where((ids == self.word_id).unsqueeze(-1), row.to(embeds.dtype), embeds)
        pooling = getattr(self.predictor, "head_pooling", None) or head_pooling(model)
        logits, _ = head_forward(model, {**enc, "inputs_embeds": embeds}, pooling, represent=False)
        return torch.softmax(logits.float(), dim=-1)

    def score(self, texts, texts_b=None):
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                part, part_b = texts[i : i + self.batch_size], None if texts_b is None else texts_b[i : i + self.batch_size]
                p = self._probs(part, part_b, None)
                drop = p[:, self.target] - self._probs(self.insert(part), part_b, self.row)[:, self.target]
                out.append(torch.where(p.argmax(-1) == self.target, -drop, torch.full_like(drop, NOT_PROTECTED)))
        return torch.cat(out).cpu().numpy().astype(float) if out else np.zeros(0)


def build(name: str, predictor, target: int, seed: int, perplexity=None):
    """The defence `name` (advkit.poison.DEFENCES) with the papers' settings, checked against `predictor`."""
    if name == "onion":
        return Onion(perplexity)
    if name == "strip":
        return Strip(seed=seed)
    return Rap(target).check(predictor)


def threshold_at_frr(dev_scores, frr: float = FRR) -> float:
    """The smallest dev score t with at most floor(frr * n) dev scores above it: inputs scoring above
    t are flagged, so at most `frr` of the clean dev inputs are (fewer where scores tie at t)."""
    ranked = sorted(float(s) for s in dev_scores)
    return ranked[len(ranked) - 1 - math.floor(frr * len(ranked))]


def detection_metrics(dev_scores, clean_scores, triggered_scores, clean_correct, triggered_flipped) -> dict:
    """The numbers of a defence from its scores.

    dev_scores: clean dev inputs (the threshold's only source); clean_scores and clean_correct: the
    clean test inputs and whether the model is right on each; triggered_scores and triggered_flipped:
    the non-target test inputs with the trigger and whether it sends each to the target.

    Conventions: a flagged input is rejected. A rejected triggered input counts as not flipped
    (label_flip_rate_after = flipped and not flagged, over the triggered inputs); a rejected clean
    input counts as an error (accuracy_after = right and not flagged, over the clean inputs)."""
    t = threshold_at_frr(dev_scores)
    flag_clean = [s > t for s in clean_scores]
    flag_triggered = [s > t for s in triggered_scores]
    return {"auroc": auroc(list(triggered_scores), list(clean_scores)), "threshold": t,
            "frr_dev": sum(s > t for s in dev_scores) / len(dev_scores),
            "frr_test": sum(flag_clean) / len(flag_clean),
            "detected": sum(flag_triggered) / len(flag_triggered),
            "label_flip_rate_after": sum(f and not g for f, g in zip(triggered_flipped, flag_triggered))
            / len(flag_triggered),
            "accuracy_after": sum(c and not g for c, g in zip(clean_correct, flag_clean)) / len(flag_clean),
            "dev_examples": len(dev_scores), "clean_examples": len(flag_clean),
            "triggered_examples": len(flag_triggered)}


def defend(defence, predictor, dev, examples, triggered, predictions, flips) -> tuple[dict, list, list]:
    """Fit `defence` on the clean `dev` examples, score them, the clean test `examples` and their
    `triggered` twins (the non-target examples with the trigger, in order), and measure it.
    `predictions`: the model's label of each clean example; `flips`: per example, whether the
    trigger flips it (None for target-labelled ones, which have no twin). Returns (metrics,
    clean scores, triggered scores aligned with `examples`, None where there is no twin)."""

    def pairs(batch):
        return [e.text for e in batch], None if not batch or batch[0].text_b is None else [e.text_b for e in batch]

    defence.fit(predictor, dev)
    dev_scores = defence.score(*pairs(dev)).tolist()
    clean = defence.score(*pairs(examples)).tolist()
    twins = iter(defence.score(*pairs(triggered)).tolist())
    aligned = [None if f is None else next(twins) for f in flips]
    metrics = detection_metrics(dev_scores, clean, [s for s in aligned if s is not None],
                                [p == e.label for p, e in zip(predictions, examples)],
                                [f for f in flips if f is not None])
    return {"name": defence.name, **metrics}, clean, aligned
