"""Chinese adversarial examples with sentence-piece substitutes.

Li, Shao, Song, Qiu, Huang (2020), "Generating Adversarial Examples in Chinese Texts
Using Sentence-Pieces" (arXiv:2012.14769): a masked language model whose vocabulary is
SentencePiece pieces proposes replacements piece by piece, searched greedily as in
BERT-Attack (Li et al., EMNLP 2020). See ../shared/docs/METHODS.md §3.

- `piece_lm`: `advkit build-piece-lm`, the SentencePiece unigram model and its masked LM.
- `substitutes`: candidate generators (pieces, chars, words, glyph, homophone).
- `search`: the greedy BERT-Attack-style search over units of a text.
- `run`: `advkit attack-zh`, records, metrics and the Markdown sample.
"""

from __future__ import annotations


def is_cjk(ch: str) -> bool:
    """A CJK unified ideograph (basic block, extension A, compatibility ideographs)."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def has_cjk(text: str) -> bool:
    return any(is_cjk(c) for c in text)


def cjk_only(text: str) -> bool:
    return bool(text) and all(is_cjk(c) for c in text)
