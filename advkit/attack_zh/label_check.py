"""Rejects substitutes that change the true label instead of fooling the victim.

METHODS.md §3 lists it as a defect of existing Chinese attack code: a swap that changes
the label (朝鲜→中国 in a news-topic task) counted as a success. Sentence-encoder
similarity does not catch it (不错→不好 keeps an m3e-small cosine of 0.997), so the check
looks at what the swap says about the label:

- negation: the substitute has a different number of negation characters (不 没 无 非 未
  别 莫 勿 否 毋) than the unit it replaces: adding or removing a negation inverts meaning.
- lexicon (adds to negation): in the data set's training split, the substitute is a much
  stronger indicator of some other class c than the unit was. With r_c(s) the occurrences
  of string s per training text of class c, and score_c(s) = log r_c(s) - log r_y(s) (y the
  true label, add-`min_count` smoothed), the swap u -> s is rejected when
  score_c(s) - score_c(u) > log(ratio) for a class c, where s occurs at least `min_count`
  times in class c or u at least `min_count` times in class y (the evidence is real).
  不错→不好 in a positive review moves from a positive to a negative indicator: rejected;
  so is 很满意→(a word of neither class): the review loses its evidence for y. Same-class
  swaps (喜欢→喜爱) and swaps of words that mark no class (屏幕→房间) are kept.

In context: a swap is judged twice, on the unit itself and on the word that contains it, as
jieba segments the text around it before and after the swap (CONTEXT characters each side). A
character unit says little alone (错→好), but inside 不错 the swap makes 不好, which the
lexicon sees as a move from a positive to a negative word: rejected, whichever generator
proposed it. In context only such moves towards another class count (the new word must be
evidence for it), not a word that merely loses its evidence.

A user's own file: the lexicon is counted on the file's train part (the disjoint 80 % that
`advkit.data` splits off), as on a registered data set's training split.

A conservative filter: it also rejects some swaps a reader would accept (不错→很好 drops
a 不). What it lets through is not proof of label preservation either; a human-rated sample is.
"""

from __future__ import annotations

import functools
import math
import random

NEGATIONS = frozenset("不没无非未别莫勿否毋")
# Words whose negation character negates nothing: 非常 'very', 无论 'no matter', 别人 'others'...
NOT_NEGATIONS = ("非常", "无论", "无比", "别人", "别的", "特别", "区别", "分别", "差别", "级别", "类别", "性别",
                 "告别", "识别", "未来", "莫名")


CONTEXT = 6  # characters on each side of a swap that the segmenter sees to find the word around it


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(60)  # its dictionary-loading chatter, as WordSubstitutes silences it
    return jieba


def word_around(left: str, middle: str, right: str) -> str:
    """The jieba words of the text around `middle` (CONTEXT characters each side) that overlap it, joined:
    the word a unit sits in (错 in 不错的酒店 -> 不错), or the unit itself where it is a word."""
    return _word_around(left[-CONTEXT:], middle, right[:CONTEXT])


@functools.lru_cache(maxsize=65536)  # every candidate of a position shares the unit's own context
def _word_around(left: str, middle: str, right: str) -> str:
    start, end, pos, words = len(left), len(left) + len(middle), 0, []
    for word in _jieba().lcut(left + middle + right):
        if pos < end and pos + len(word) > start:
            words.append(word)
        pos += len(word)
    return "".join(words)


def negations(s: str) -> int:
    for word in NOT_NEGATIONS:
        s = s.replace(word, "")
    return sum(ch in NEGATIONS for ch in s)


class LabelCheck:
    """`check(unit, substitute, label) -> bool`: True when the swap may keep the label."""

    def __init__(self, texts=None, labels=None, num_labels: int = 0, ratio: float = 2.0, min_count: int = 5,
                 max_texts: int = 20000, seed: int = 0):
        self.ratio, self.min_count = math.log(ratio), min_count
        self.corpus: list[str] = []
        self.docs: list[int] = []
        if texts is not None:
            pairs = list(zip(texts, labels))
            if len(pairs) > max_texts:  # bounded cost: str.count over a few MB per new string
                pairs = random.Random(seed).sample(pairs, max_texts)
            for c in range(num_labels):
                members = [t for t, y in pairs if y == c]
                self.corpus.append("\n".join(members))  # \n: a match never spans two texts
                self.docs.append(len(members))
        self._counts: dict[str, list[int]] = {}

    @property
    def mode(self) -> str:
        return "lexicon" if self.corpus else "negation"

    def counts(self, s: str) -> list[int]:
        if s not in self._counts:
            self._counts[s] = [text.count(s) for text in self.corpus]
        return self._counts[s]

    def score(self, s: str, c: int, y: int) -> float:
        n = self.counts(s)
        a = self.min_count  # add-5 smoothing: a string seen a handful of times is weak evidence either way
        return math.log((n[c] + a) / (self.docs[c] + a)) - math.log((n[y] + a) / (self.docs[y] + a))

    def __call__(self, unit: str, substitute: str, label: int, left: str = "", right: str = "") -> bool:
        """The swap unit -> substitute in the text left + unit + right: judged on the units, and on the words
        that contain them in context (`word_around`) where those are longer."""
        unit, substitute = unit.strip(), substitute.strip()
        if not self.judge(unit, substitute, label):
            return False
        if not (left or right):
            return True
        before, after = word_around(left, unit, right), word_around(left, substitute, right)
        return (before, after) == (unit, substitute) or self.judge(before, after, label, removal=False)

    def judge(self, unit: str, substitute: str, label: int, removal: bool = True) -> bool:
        """The rules on two strings. removal=False (the words in context): only a move to a word that is
        itself evidence for another class counts (score_c > log ratio), not the loss of the true class's
        evidence: breaking a word that marks the class (很差 -> 太 in a negative review) is what most
        character swaps do, and the judge keeps the label of such successes as often as of the others
        (bench/label_check_context.py)."""
        if negations(unit) != negations(substitute):
            return False
        if not self.corpus or not 0 <= label < len(self.corpus):
            return True
        n, was = self.counts(substitute), self.counts(unit)[label] if removal else 0
        return not any((n[c] >= self.min_count or was >= self.min_count)
                       and self.score(substitute, c, label) - self.score(unit, c, label) > self.ratio
                       and (removal or self.score(substitute, c, label) > self.ratio)
                       for c in range(len(self.corpus)) if c != label)


@functools.lru_cache(maxsize=4)  # a card runs five generators on one data set: read its training split once
def load(mode: str, dataset: str, *, root=None, text_column=None, text_b_column=None, label_column=None):
    """The check for `--label-check MODE`; None for 'none'. The lexicon needs a labelled training
    split (registered data sets have one, a user's file its train part); without it the check falls
    back to negation."""
    if mode == "none":
        return None
    if mode == "negation":
        return LabelCheck()

    from advkit import data
    from advkit.errors import UserError

    # a user's file: its train part, disjoint from the dev and test parts an attack reads (advkit.data)
    try:
        train = data.load(dataset, "train", root=root, text_column=text_column, text_b_column=text_b_column,
                          label_column=label_column)
    except UserError:
        return LabelCheck()
    if not train.labelled:
        return LabelCheck()
    return LabelCheck([e.text for e in train.examples], [e.label for e in train.examples], len(train.labels))
