"""ONION (Qi et al., EMNLP 2021): remove the words whose removal makes a text much more fluent.

For a text of words w_1..w_n, the suspicion of w_i is f_i = p_0 - p_i, where p_0 is the text's
perplexity and p_i that of the text without w_i; words with f_i > threshold are removed before
the classifier sees the text. Inserted trigger tokens ("cf", "bb") are rare words that raise
perplexity, so a single trigger is usually caught; the question a combinatorial trigger asks is
whether its parts are. ONION used GPT-2; no English causal network LM ships here, so the perplexity is
`--onion-lm word-trigram`'s (the English word trigram judge of advkit.fluency: a causal word LM) or
the pseudo-perplexity of the local masked LM that `--onion-lm` names.
Words are whitespace-separated tokens, and each Chinese character is a word of its own.
"""

from __future__ import annotations

import re

from advkit.hf import MAX_LENGTH


_CJK = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
_UNITS = re.compile(rf"\s+|[{_CJK}]\s*|[^\s{_CJK}]+\s*")


def split_words(text: str) -> list[str]:
    """Units that concatenate back to `text` exactly: each Chinese character, each run of other
    non-space characters, with the whitespace after it (a leading space is a unit of its own)."""
    return _UNITS.findall(text)


def count_words(text: str) -> int:
    return sum(1 for u in split_words(text) if not u.isspace())


def onion_filter(text: str, perplexity, threshold: float = 0.0) -> str:
    """`text` without its suspicious words; `perplexity(text) -> float | None` (None: nothing to score)."""
    units = split_words(text)
    words = [i for i, u in enumerate(units) if not u.isspace()]
    if len(words) < 2:
        return text
    p0 = perplexity(text)
    if p0 is None:
        return text
    drop = set()
    for i in words:
        p_i = perplexity("".join(units[:i] + units[i + 1 :]))
        if p_i is not None and p0 - p_i > threshold:
            drop.add(i)
    return "".join(u for i, u in enumerate(units) if i not in drop)


class OnionPredictor:
    """A predictor whose inputs pass through `onion_filter` first (the first text of a pair only)."""

    def __init__(self, predictor, lm: str, threshold: float = 0.0, device: str = "cpu", max_length: int = MAX_LENGTH,
                 data_root: str | None = None, language: str | None = None):
        from advkit.fluency import perplexity_lm

        self.predictor, self.threshold = predictor, threshold
        self.perplexity = perplexity_lm(lm, device, max_length, "--onion-lm", data_root, language)
        self.filtered: dict[str, str] = {}  # the same text is scored once (clean accuracy, LFR, scan)

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def filter(self, text: str) -> str:
        if text not in self.filtered:
            self.filtered[text] = onion_filter(text, self.perplexity, self.threshold)
        return self.filtered[text]

    def predict_proba(self, texts, texts_b=None):
        return self.predictor.predict_proba([self.filter(t) for t in texts], texts_b)
