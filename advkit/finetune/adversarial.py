"""Adversarial examples for adversarial training (`finetune --method at`), after A2T.

Yoo & Qi, *Towards Improving Adversarial Training of NLP Models*, Findings of EMNLP 2021 (A2T):
after clean warm-up epochs, a cheap attack on the model being trained turns part of each batch into
adversarial examples, which join the batch with their true labels. A2T's attack, and where ours
departs from it (no downloads here):
- word importance: the gradient of the loss with respect to each word's input embeddings (the L1
  norm, summed over the word's sub-tokens), one backward pass per batch: as A2T;
- swaps: WordNet synonyms (the project's NLTK copy) instead of counter-fitted embedding neighbours;
  stop words are never replaced;
- search: greedy over words in order of importance, each step keeps the synonym that lowers the
  true class's probability most; it stops when the prediction flips, when 10 % of the words (at
  least 2) have changed (A2T's modification rate) or when the query budget is spent;
- A2T's sentence-encoder and part-of-speech constraints are left out (they cost a second model).
Only successful examples join the batch, as in A2T. The search runs with dropout off and leaves no
gradient on the parameters. For sentence pairs only the first sentence is perturbed.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache

MAX_RATE, MIN_WORDS = 0.1, 2  # A2T's modification rate: at most 10 % of the words, at least 2
MAX_SYNONYMS = 8  # candidates per word (WordNet's commonest senses first)
_SPLIT = re.compile(r"(\s+)")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset:
    from advkit.assets import NLTK_ENGLISH_STOPWORDS

    return frozenset(NLTK_ENGLISH_STOPWORDS)


@lru_cache(maxsize=1)
def _wordnet():
    from advkit.assets import require_wordnet, use_project_nltk

    require_wordnet("--method at")
    use_project_nltk()
    from nltk.corpus import wordnet

    return wordnet


@lru_cache(maxsize=65536)
def synonyms(word: str) -> tuple[str, ...]:
    """WordNet lemmas of the word's senses (single alphabetic words other than itself), in the
    case of the word, at most MAX_SYNONYMS; () for stop words and non-words."""
    low = word.lower()
    if not word.isalpha() or low in _stopwords():
        return ()
    found: list[str] = []
    for synset in _wordnet().synsets(low):
        for lemma in synset.lemmas():
            name = lemma.name()
            if name.isalpha() and name.lower() != low and name.lower() not in found:
                found.append(name.lower())
    case = str.capitalize if word[:1].isupper() else str
    return tuple(case(w) for w in found[:MAX_SYNONYMS])


@dataclasses.dataclass
class Outcome:
    """What one call of `attack` did: examples attacked (those the model got right), flipped, queries."""

    attacked: int = 0
    succeeded: int = 0
    queries: int = 0


def _probabilities(net, tokenizer, texts, texts_b, max_length, device, precision):
    import torch

    from advkit import hf
    from advkit.precision import autocast

    with torch.no_grad(), autocast(device, precision):
        logits, _, _ = net(hf.encode(tokenizer, texts, texts_b, max_length, device), represent=False)
    return torch.softmax(logits.float(), dim=-1)


def _importance(net, tokenizer, words, texts_b, labels, max_length, device, precision):
    """Per example, the gradient L1 norm of each whitespace word's embeddings (0 beyond truncation)."""
    import torch
    import torch.nn.functional as F

    from advkit.precision import autocast

    pairs = [t.split() for t in texts_b] if texts_b is not None else None
    enc = tokenizer(words, pairs, is_split_into_words=True, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    captured = []
    hook = net.classifier.get_input_embeddings().register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with autocast(device, precision):
            logits, _, _ = net(enc.to(device), represent=False)
    finally:
        hook.remove()
    loss = F.cross_entropy(logits.float(), labels)
    (grad,) = torch.autograd.grad(loss, captured[0])  # never touches the parameters' .grad
    norms = grad.float().abs().sum(-1).cpu()
    scores = []
    for i, ws in enumerate(words):
        score = [0.0] * len(ws)
        for t, (w, s) in enumerate(zip(enc.word_ids(i), enc.sequence_ids(i))):
            if w is not None and s == 0:
                score[w] += float(norms[i, t])
        scores.append(score)
    return scores


def attack(net, tokenizer, batch, queries: int, max_length: int, device, precision="fp32"):
    """(adversarial examples, Outcome): the examples of `batch` that the model classifies right,
    attacked; those whose prediction flipped are returned with their true labels."""
    import torch

    was_training = net.training
    net.eval()
    outcome = Outcome()
    try:
        texts_b = [e.text_b for e in batch] if batch and batch[0].text_b is not None else None
        probs = _probabilities(net, tokenizer, [e.text for e in batch], texts_b, max_length, device, precision)
        right = [i for i, e in enumerate(batch) if int(probs[i].argmax()) == e.label]
        if not right:
            return [], outcome
        outcome.attacked = len(right)
        pieces = {i: _SPLIT.split(batch[i].text) for i in right}  # words at even indices, spaces between
        words = [pieces[i][0::2] for i in right]
        labels = torch.tensor([batch[i].label for i in right], device=device)
        scores = _importance(net, tokenizer, words, [texts_b[i] for i in right] if texts_b else None, labels,
                             max_length, device, precision)
        state = {}
        for i, ws, score in zip(right, words, scores):
            order = [w for w in sorted(range(len(ws)), key=lambda w: -score[w]) if synonyms(ws[w])]
            state[i] = {"order": order, "changed": 0, "queries": 0, "best": float(probs[i, batch[i].label]),
                        "cap": max(MIN_WORDS, int(MAX_RATE * len(ws))), "done": False}
        adversarial = []
        while True:
            trials, owners = [], []
            for i in right:
                s = state[i]
                if s["done"] or not s["order"] or s["changed"] >= s["cap"] or s["queries"] >= queries:
                    continue
                w = s["order"].pop(0)
                for candidate in synonyms(pieces[i][2 * w])[: queries - s["queries"]]:
                    trial = list(pieces[i])
                    trial[2 * w] = candidate
                    trials.append("".join(trial))
                    owners.append((i, w, candidate))
                s["queries"] += min(len(synonyms(pieces[i][2 * w])), queries - s["queries"])
            if not trials:
                break
            outcome.queries += len(trials)
            p = _probabilities(net, tokenizer, trials, [batch[i].text_b for i, _, _ in owners] if texts_b else None,
                               max_length, device, precision)
            best = {}
            for k, (i, w, candidate) in enumerate(owners):
                true = float(p[k, batch[i].label])
                if true < state[i]["best"] and (i not in best or true < best[i][0]):
                    best[i] = (true, w, candidate, int(p[k].argmax()) != batch[i].label)
            for i, (true, w, candidate, flipped) in best.items():
                state[i]["best"] = true
                state[i]["changed"] += 1
                pieces[i][2 * w] = candidate
                if flipped:
                    state[i]["done"] = True
                    adversarial.append(dataclasses.replace(batch[i], text="".join(pieces[i])))
        outcome.succeeded = len(adversarial)
        return adversarial, outcome
    finally:
        net.train(was_training)
