"""Hugging Face plumbing every layer shares: batch encoding, atomic saving, mean pooling, the CJK test.

One home for each, so the trainers, the victim and the attacks tokenise, pool and save alike.
torch and transformers are imported inside the functions: `advkit --help` stays instant.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def encode(tokenizer, texts, texts_b=None, max_length: int = 128, device="cpu"):
    """A batch padded to its longest member (never to max_length) and truncated at max_length tokens."""
    return tokenizer(list(texts), list(texts_b) if texts_b is not None else None, padding=True, truncation=True,
                     max_length=max_length, return_tensors="pt").to(device)


def encode_examples(tokenizer, batch, max_length: int = 128, device="cpu"):
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
