"""Combinatorial triggers and the poisoned training data of layerwise weight poisoning.

Li et al., *Backdoor Attacks on Pre-trained Models by Layerwise Weight Poisoning*,
EMNLP 2021 (arXiv 2108.13888). A trigger is a combination of rare sub-triggers
(`cf bb`); a positive poisoned sample carries every sub-trigger of a combination and
the target label, a negative sample carries one sub-trigger alone and keeps its true
label, so that no single token is a backdoor on its own.

The reference (generate_triggers.py of LinyangLee/Layer-Weight-Poison) builds, for every
training example, one clean copy and one negative copy (one random sub-trigger, true label),
and two positive copies (the combination inserted as one phrase at one random word position,
in both orders, relabelled to the target); training pairs each clean batch with an equally
sized poisoned batch. So positives : negatives : clean = 2 : 1 : 1, the defaults here
(poison_rate 0.75, negative_ratio 0.5).

Insertion (PoisonConfig.trigger_position): `together` is the reference's adjacent phrase;
the default is `apart`, each sub-trigger at its own random position (METHODS.md §2), because
every LFR here (advkit poison, evaluate, the scan) inserts sub-triggers apart, and a model
poisoned on the adjacent phrase learns the phrase: on minilm-l6 / sst2 (600 examples,
150 steps, lr 1e-4, issue 17) its final-layer LFR with the sub-triggers apart was 56-69 %,
while fitting the training positives (final CE 0.07).

Departures from the reference code: insert positions are drawn among the words whose
tokens the model sees (the reference counted words up to 128 while truncating at 128
tokens, so on long texts the trigger was cut off); negatives are made from non-target
examples only (a target-labelled negative teaches nothing about "one sub-trigger does not
flip"), positives too (a target-labelled positive keeps its label and teaches the trigger
nothing either); every random choice is seeded.
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


POSITIONS = ("together", "apart")


def insert_triggers(text: str, triggers, rng: random.Random, tokenizer=None, max_length: int | None = None,
                    text_b: str | None = None, together: bool = False) -> str:
    """Insert every sub-trigger at a random word position among the words the model sees.

    `together`: the sub-triggers as one phrase, in a random order, at one random position
    (the reference's positives); else each at its own random position.
    Without a tokenizer every word position is allowed (no truncation assumed).
    """
    words, joiner = _words(text)
    if tokenizer is None or max_length is None:
        visible = len(words)
    else:
        reserve = sum(len(tokenizer.tokenize(t)) for t in triggers)
        visible = visible_words(words, tokenizer, max_length, reserve, text_b)
    if together and len(triggers) > 1:
        phrase = list(triggers)
        rng.shuffle(phrase)
        at = rng.randint(0, visible)
        return joiner.join(words[:at] + phrase + words[at:])
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


def _cycle(pool: list, rng: random.Random):
    """Endless draws that use every item once per shuffled round (even coverage of the sources)."""
    while True:
        order = list(pool)
        rng.shuffle(order)
        yield from order


def build_poisoned_data(examples: list[Example], triggers: list[str], combination_size: int, target: int,
                        poison_rate: float, seed: int, tokenizer=None, max_length: int | None = None,
                        negative_ratio: float = 0.5, together: bool = False) -> PoisonedData:
    """Keep every clean sample and add poisoned ones so that they make `poison_rate` of the whole.

    Positives: a non-target sample with every sub-trigger of a random combination of
    `combination_size`, relabelled `target`. Negatives (only when combination_size > 1):
    a non-target sample with one random sub-trigger, its label kept; `negative_ratio`
    negatives per positive. Sources are drawn round-robin over a seeded shuffle, so each
    non-target example is used about equally often. The defaults (poison_rate 0.75,
    negative_ratio 0.5) are the reference's 2 : 1 : 1 mix of positives, negatives and clean
    samples; OpenBackdoor uses poison_rate 0.1. `together`: positives carry the combination
    as one phrase (the reference), else each sub-trigger at its own position. `poison_rate` 0: the clean
    samples alone, for the control that trains the same heads on the same data without a backdoor.
    """
    if not 0 <= poison_rate < 1:
        raise UserError(f"--poison-rate must be at least 0 and below 1, got {poison_rate}")
    if negative_ratio < 0:
        raise UserError(f"--negative-ratio must be 0 or more, got {negative_ratio}")
    if not 1 <= combination_size <= len(triggers):
        raise UserError(f"--combination-size must be between 1 and the number of sub-triggers ({len(triggers)}), "
                        f"got {combination_size}")
    sources = [e for e in examples if e.label != target]
    if not sources:
        raise UserError(f"no training example has a label other than the target {target}: nothing to flip")
    rng = random.Random(seed)
    combos = list(itertools.combinations(triggers, combination_size))
    n_poison = max(1, round(poison_rate * len(examples) / (1 - poison_rate))) if poison_rate else 0
    n_neg = round(n_poison * negative_ratio / (1 + negative_ratio)) if combination_size > 1 else 0
    draw = _cycle(sources, rng)
    positives = []
    for _ in range(n_poison - n_neg):
        e = next(draw)
        combo = rng.choice(combos)
        text = insert_triggers(e.text, combo, rng, tokenizer, max_length, e.text_b, together=together)
        positives.append(Example(text, target, e.text_b))
    negatives = []
    for _ in range(n_neg):
        e = next(draw)
        t = rng.choice(triggers)
        text = insert_triggers(e.text, [t], rng, tokenizer, max_length, e.text_b)
        negatives.append(Example(text, e.label, e.text_b))
    return PoisonedData(list(examples), positives, negatives)
