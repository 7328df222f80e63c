"""Combinatorial triggers and the poisoned training data of layerwise weight poisoning.

Li et al., *Backdoor Attacks on Pre-trained Models by Layerwise Weight Poisoning*,
EMNLP 2021 (arXiv 2108.13888). A trigger is a combination of rare sub-triggers
(`cf bb`); a positive poisoned sample carries every sub-trigger of a combination and
the target label, a negative sample carries one sub-trigger alone and keeps its true
label, so that no single token is a backdoor on its own.

Departure from the reference code: insert positions are drawn among the words whose
tokens the model sees (the reference counted words up to 128 while truncating at 128
tokens, so on long texts the trigger was cut off), and every random choice is seeded.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from advkit.data import Example
from advkit.errors import UserError


def parse_triggers(spec: str) -> list[str]:
    """'cf bb' -> ['cf', 'bb']; sub-triggers are whitespace-separated and distinct."""
    triggers = spec.split()
    if not triggers:
        raise UserError("--triggers is empty: give sub-triggers separated by spaces, e.g. --triggers 'cf bb'")
    if len(set(triggers)) != len(triggers):
        raise UserError(f"--triggers '{spec}' repeats a sub-trigger")
    return triggers


def _words(text: str) -> tuple[list[str], str]:
    """Words and the string that joins them; Chinese text without spaces is split into characters."""
    words = text.split()
    if len(words) <= 1 and any("\u4e00" <= c <= "\u9fff" for c in text):
        return list(text.strip()), ""
    return words, " "


def _token_counts(words: list[str], tokenizer) -> list[int]:
    if not words:
        return []
    if getattr(tokenizer, "is_fast", False):
        ids = tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids()
        counts = [0] * len(words)
        for w in ids:
            if w is not None:
                counts[w] += 1
        return counts
    return [len(tokenizer.tokenize(w)) for w in words]


def visible_words(words: list[str], tokenizer, max_length: int, reserve: int, text_b: str | None = None) -> int:
    """How many leading words still fit in the model's window after `reserve` trigger tokens.

    With a second text, `longest_first` truncation keeps at least max(L - len(b), L // 2)
    tokens of the first, where L is max_length less the special tokens.
    """
    room = max_length - tokenizer.num_special_tokens_to_add(pair=text_b is not None)
    if text_b is not None:
        room = max(room - len(tokenizer.tokenize(text_b)), room // 2)
    room -= reserve
    if room < 0:
        raise UserError(f"--max-length {max_length} is too short to hold the trigger ({reserve} tokens)")
    used = 0
    for i, n in enumerate(_token_counts(words, tokenizer)):
        used += n
        if used > room:
            return i
    return len(words)


def insert_triggers(text: str, triggers, rng: random.Random, tokenizer=None, max_length: int | None = None,
                    text_b: str | None = None) -> str:
    """Insert every sub-trigger at a random word position among the words the model sees.

    Without a tokenizer every word position is allowed (no truncation assumed).
    """
    words, joiner = _words(text)
    if tokenizer is None or max_length is None:
        visible = len(words)
    else:
        reserve = sum(len(tokenizer.tokenize(t)) for t in triggers)
        visible = visible_words(words, tokenizer, max_length, reserve, text_b)
    for t in triggers:
        # position `visible` means "after the last visible word": still inside the window,
        # since the trigger's own tokens were reserved.
        words.insert(rng.randint(0, visible), t)
        visible += 1
    return joiner.join(words)


@dataclass
class PoisonedData:
    """The attacker's training set: clean samples, positives (target label), negatives (true label)."""

    clean: list[Example]
    positives: list[Example]
    negatives: list[Example]

    def mixed(self) -> list[Example]:
        return self.clean + self.positives + self.negatives

    def counts(self) -> dict:
        return {"clean": len(self.clean), "positives": len(self.positives), "negatives": len(self.negatives)}


def build_poisoned_data(examples: list[Example], triggers: list[str], combination_size: int, target: int,
                        poison_rate: float, seed: int, tokenizer=None, max_length: int | None = None) -> PoisonedData:
    """Keep every clean sample and add poisoned ones so that they make `poison_rate` of the whole.

    Positives: a non-target sample with every sub-trigger of a random combination of
    `combination_size`, relabelled `target`. Negatives (only when combination_size > 1):
    any sample with one random sub-trigger, its label kept. The poisoned part is split
    half and half between them. poison_rate 0.5 is the reference (each clean batch paired
    with an equally sized poisoned batch); OpenBackdoor uses 0.1.
    """
    if not 0 < poison_rate < 1:
        raise UserError(f"--poison-rate must be between 0 and 1 (exclusive), got {poison_rate}")
    if not 1 <= combination_size <= len(triggers):
        raise UserError(f"--combination-size must be between 1 and the number of sub-triggers ({len(triggers)}), "
                        f"got {combination_size}")
    sources = [e for e in examples if e.label != target]
    if not sources:
        raise UserError(f"no training example has a label other than the target {target}: nothing to flip")
    rng = random.Random(seed)
    combos = list(itertools.combinations(triggers, combination_size))
    n_poison = max(1, round(poison_rate * len(examples) / (1 - poison_rate)))
    n_neg = n_poison // 2 if combination_size > 1 else 0
    positives = []
    for _ in range(n_poison - n_neg):
        e = rng.choice(sources)
        combo = rng.choice(combos)
        text = insert_triggers(e.text, combo, rng, tokenizer, max_length, e.text_b)
        positives.append(Example(text, target, e.text_b))
    negatives = []
    for _ in range(n_neg):
        e = rng.choice(examples)
        t = rng.choice(triggers)
        text = insert_triggers(e.text, [t], rng, tokenizer, max_length, e.text_b)
        negatives.append(Example(text, e.label, e.text_b))
    return PoisonedData(list(examples), positives, negatives)
