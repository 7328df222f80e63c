"""Hugging Face plumbing every layer shares: batch encoding, atomic saving, mean pooling, the CJK test,
and the Simplified/Traditional Chinese conversion of a model's input.

One home for each, so the trainers, the victim and the attacks tokenise, pool and save alike.
torch, transformers and opencc are imported inside the functions: `advkit --help` stays instant.

Script conversion: a tokenizer tagged with `set_script(tokenizer, "traditional")` (models.py tags
every tokenizer it loads from the model's registry entry or its saved config) reads its texts
through `model_texts`, which converts Simplified to Traditional (OpenCC s2tw). `encode` (training,
evaluation, attack queries) and every other place a text meets such a tokenizer go through it, so
a model trained on Traditional text never sees Simplified characters.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

# Tokens per text wherever a command or caller gives no other length: the one place this default is written.
MAX_LENGTH = 128

SCRIPT_KEY = "advkit_script"  # the tokenizer attribute and the config.json key naming the script a model reads
SCRIPTS = ("simplified", "traditional")


@lru_cache(maxsize=None)
def _opencc(config: str):
    try:
        from opencc import OpenCC
    except ImportError:
        from advkit.errors import UserError

        raise UserError("Chinese script conversion needs OpenCC: pip install opencc==1.4.2") from None
    return OpenCC(config)


@lru_cache(maxsize=8192)
def to_traditional(text: str) -> str:
    """Simplified -> Traditional with Taiwan forms (OpenCC s2tw, as in ckiplab's training text)."""
    return _opencc("s2tw").convert(text) if text else text


@lru_cache(maxsize=8192)
def to_simplified(text: str) -> str:
    """Traditional (any variant) -> Simplified (OpenCC t2s)."""
    return _opencc("t2s").convert(text) if text else text


def traditional_only(text: str) -> bool:
    """True when `text` holds a character a Simplified writer would not write (t2s changes it)."""
    return any(is_cjk(c) for c in text) and to_simplified(text) != text


def reads_simplified(text: str) -> bool:
    """A text counts as Simplified unless t2s changes at least 2 of its characters and 5 % of its CJK ones
    (a stray 乾 or a rare variant in a Simplified data set does not make it Traditional)."""
    cjk = sum(1 for c in text if is_cjk(c))
    if not cjk:
        return True
    converted = to_simplified(text)
    if len(converted) != len(text):
        return False
    changed = sum(1 for a, b in zip(text, converted) if a != b)
    return changed < 2 or changed < 0.05 * cjk


def set_script(tokenizer, script: str | None):
    """Tag a tokenizer with the script its model reads; returns it."""
    if script is not None and script not in SCRIPTS:
        raise ValueError(f"unknown script {script!r}: one of {SCRIPTS}")
    setattr(tokenizer, SCRIPT_KEY, script)
    return tokenizer


def script_of(tokenizer) -> str | None:
    return getattr(tokenizer, SCRIPT_KEY, None)


def model_text(tokenizer, text):
    """The text as the tokenizer's model reads it: converted to Traditional for a Traditional model."""
    if text is None or script_of(tokenizer) != "traditional":
        return text
    return to_traditional(text)


def model_texts(tokenizer, texts):
    return None if texts is None else [model_text(tokenizer, t) for t in texts]


def encode(tokenizer, texts, texts_b=None, max_length: int = MAX_LENGTH, device="cpu"):
    """A batch padded to its longest member (never to max_length) and truncated at max_length tokens;
    texts converted to the script the tokenizer's model reads (`model_text`)."""
    return tokenizer(model_texts(tokenizer, list(texts)), model_texts(tokenizer, list(texts_b)) if texts_b is not None
                     else None, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)


def encode_examples(tokenizer, batch, max_length: int = MAX_LENGTH, device="cpu"):
    """`encode` for data.Example objects (pairs when the first example has a second sentence)."""
    texts_b = [e.text_b for e in batch] if batch[0].text_b is not None else None
    return encode(tokenizer, [e.text for e in batch], texts_b, max_length, device)


def mean_pool(hidden, attention_mask):
    """Mean of the token states that are not padding (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def save_pretrained(folder: Path | str, *parts, files: dict[str, str] | None = None) -> None:
    """Save a model and its tokenizer (any objects with save_pretrained), plus `files` (name -> text),
    in Hugging Face format with safetensors, into a folder beside `folder` that is renamed into place:
    never half a model."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for part in parts:
        part.save_pretrained(tmp, **({"safe_serialization": True} if hasattr(part, "state_dict") else {}))
    for name, text in (files or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def pool(hidden, attention_mask, pooling: str, encoder):
    """Sentence representation from the last hidden states: [CLS], masked mean, or the pooler."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        return mean_pool(hidden, attention_mask)
    pooler = getattr(encoder, "pooler", None)
    if pooler is None:
        raise ValueError("this model has no pooler: use pooling 'cls' or 'mean'")
    if hasattr(encoder, "pooler_activation"):  # ALBERT's pooler is a bare Linear: [CLS] in, tanh after
        return encoder.pooler_activation(pooler(hidden[:, 0]))
    return pooler(hidden)  # BERT's pooler picks [CLS] itself


def is_cjk(ch: str) -> bool:
    """A CJK unified ideograph (basic block, extension A, compatibility ideographs)."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def has_cjk(text: str) -> bool:
    return any(is_cjk(c) for c in text)


def cjk_only(text: str) -> bool:
    return bool(text) and all(is_cjk(c) for c in text)
