"""Chinese adversarial examples with sentence-piece substitutes.

Li, Shao, Song, Qiu, Huang (2020), "Generating Adversarial Examples in Chinese Texts
Using Sentence-Pieces" (arXiv:2012.14769): a masked language model whose vocabulary is
SentencePiece pieces proposes replacements piece by piece, searched greedily as in
BERT-Attack (Li et al., EMNLP 2020). See ../shared/docs/METHODS.md §3.

- `piece_lm`: `advkit build-piece-lm`, the SentencePiece unigram model and its masked LM.
- `substitutes`: candidate generators (pieces, spans, chars, words, glyph, homophone).
- `search`: the greedy BERT-Attack-style search over units of a text.
- `run`: `advkit attack-zh`, records, metrics and the Markdown sample.
"""

# The substitute generators by name: config and evaluate read them without importing the method.
SUBSTITUTES = ("pieces", "spans", "chars", "words", "glyph", "homophone")
ZH_ATTACKS = tuple(f"zh-{s}" for s in SUBSTITUTES)  # `evaluate --attack zh-<substitutes>` runs attack-zh's search
