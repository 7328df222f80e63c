"""The victim: a classifier as attacks and metrics query it (texts in, probabilities out), its linear
head on the pooling it was trained with, and the sentence encoder of the similarity constraints.

One representation: a fine-tuned model's linear head reads the same pooled vector as the
contrastive space and the KNN (`head_forward`). The pooling it was trained with is written into
its config.json (`advkit_pooling`); "pooler", and any model without that entry, is the HF model's
own forward, so runs saved before this entry existed load as they were trained.
Precision, max length, batch size and device are given to the constructor, once.
"""

from __future__ import annotations

from advkit import hf
from advkit.errors import UserError
from advkit.models import _quiet_transformers, load_classifier, load_tokenizer, resolve, script_of

POOLING_KEY = "advkit_pooling"  # in a fine-tuned model's config.json: the vector its linear head reads
POOLED_HEADS = ("bert", "albert")  # model types whose head is classifier(dropout(pooled)), readable by any pooling


class Victim:
    """A sequence classifier as attacks and metrics see it: texts in, probabilities out.

    Batches are padded to their longest member (never to 512) and truncated at
    `max_length` tokens.
    """

    def __init__(self, model, tokenizer, max_length: int = hf.MAX_LENGTH, batch_size: int = 32, device: str = "cpu",
                 precision: str = "fp32"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.queries = 0  # texts classified so far: attacks report it
        self.precision = precision  # "bf16": queries under bf16 autocast (resolved: advkit.precision)

    def inference(self):
        """No gradients; under bf16 autocast when `precision` is bf16 (probabilities stay fp32)."""
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.precision == "bf16":
            stack.enter_context(torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16))
        return stack

    @classmethod
    def load(cls, ref: str, **kwargs) -> "Victim":
        model, tokenizer, _ = load_classifier(ref)
        return cls(model, tokenizer, **kwargs)

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    def _encode(self, texts, texts_b=None):
        return hf.encode(self.tokenizer, texts, texts_b, self.max_length, self.device)

    def visible_chars(self, text: str, text_b: str | None = None, segment: int = 0) -> int:
        """How many leading characters of the pair's `segment` (0: text, 1: text_b) survive truncation at
        `max_length` (all of them when the tokenizer cannot map tokens back to characters)."""
        tok = self.tokenizer
        read, read_b = hf.model_text(tok, text), hf.model_text(tok, text_b)  # s2tw keeps lengths (checked)
        whole = (text, text_b)[segment]
        if not getattr(tok, "is_fast", False) or len(tok(read, read_b)["input_ids"]) <= self.max_length:
            return len(whole)
        enc = tok(read, read_b, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        ends = [end for (start, end), seq in zip(enc["offset_mapping"], enc.sequence_ids())
                if seq == segment and end > start]
        return min(len(whole), max(ends, default=0))

    def predict_proba(self, texts, texts_b=None):
        import numpy as np
        import torch

        out = []
        with self.inference():
            for i in range(0, len(texts), self.batch_size):
                batch_b = texts_b[i : i + self.batch_size] if texts_b is not None else None
                logits = self.model(**self._encode(texts[i : i + self.batch_size], batch_b)).logits
                out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        self.queries += len(texts)
        return np.concatenate(out) if out else np.zeros((0, self.num_labels), dtype="float32")

    def embed(self, texts, texts_b=None, pooling: str = "mean"):
        """Sentence vectors from the encoder: mean of token states, or the [CLS] state."""
        import numpy as np

        base = getattr(self.model, self.model.base_model_prefix)
        out = []
        with self.inference():
            for i in range(0, len(texts), self.batch_size):
                batch_b = texts_b[i : i + self.batch_size] if texts_b is not None else None
                enc = self._encode(texts[i : i + self.batch_size], batch_b)
                hidden = base(**enc).last_hidden_state
                if pooling == "cls":
                    vec = hidden[:, 0]
                else:
                    vec = hf.mean_pool(hidden, enc["attention_mask"])
                out.append(vec.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype="float32")


def head_pooling(model) -> str:
    """The pooling a classifier's linear head reads: its config's `advkit_pooling`, else "pooler"."""
    return getattr(model.config, POOLING_KEY, None) or "pooler"


def check_head(model, pooling: str) -> None:
    """Refuse a pooling the model's head cannot read; "pooler" is the model's own forward."""
    if pooling == "pooler":
        return
    from torch import nn

    if (model.config.model_type not in POOLED_HEADS or not isinstance(getattr(model, "classifier", None), nn.Linear)
            or not isinstance(getattr(model, "dropout", None), nn.Dropout)):
        raise UserError(f"--pooling {pooling}: the linear head of a {model.config.model_type} classifier cannot "
                        f"read it (supported: {', '.join(POOLED_HEADS)}); use --pooling pooler")


def head_forward(model, enc, pooling: str, represent: bool = True):
    """(logits, representation): the linear head applied to the pooled vector that is also the
    representation. For BERT and ALBERT the head is classifier(dropout(pooled)), exactly the HF
    forward's when pooling is "pooler"; "pooler" runs the HF forward itself (any architecture).
    represent=False returns (logits, None)."""
    mask = enc["attention_mask"]
    if pooling == "pooler":
        out = model(**enc, output_hidden_states=represent)
        rep = hf.pool(out.hidden_states[-1], mask, pooling, model.base_model) if represent else None
        return out.logits, rep
    hidden = model.base_model(**enc).last_hidden_state
    rep = hf.pool(hidden, mask, pooling, model.base_model)
    return model.classifier(model.dropout(rep)), (rep if represent else None)


class PooledVictim(Victim):
    """A `Victim` whose linear head reads `pooling` (cls, mean) instead of the HF pooler."""

    def __init__(self, model, tokenizer, pooling: str | None = None, **kwargs):
        super().__init__(model, tokenizer, **kwargs)
        self.head_pooling = pooling or head_pooling(model)
        check_head(model, self.head_pooling)

    def predict_proba(self, texts, texts_b=None):
        import numpy as np

        if self.head_pooling == "pooler":
            return super().predict_proba(texts, texts_b)
        import torch

        out = []
        with self.inference():
            for i in range(0, len(texts), self.batch_size):
                batch_b = texts_b[i : i + self.batch_size] if texts_b is not None else None
                logits, _ = head_forward(self.model, self._encode(texts[i : i + self.batch_size], batch_b),
                                         self.head_pooling, represent=False)
                out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        self.queries += len(texts)
        return np.concatenate(out) if out else np.zeros((0, self.num_labels), dtype="float32")


class SentenceEncoderModel:
    """Mean-pooled sentence vectors from a local encoder (minilm-l6, m3e-small, any folder):
    the similarity constraint of attacks, in place of downloaded encoders such as USE."""

    def __init__(self, ref: str, max_length: int = hf.MAX_LENGTH, batch_size: int = 64, device: str = "cpu"):
        folder = resolve(ref)
        _quiet_transformers()
        from transformers import AutoModel

        try:
            self.model = AutoModel.from_pretrained(folder).to(device).eval()
            self.tokenizer = load_tokenizer(folder, script_of(ref, folder))
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{ref}: cannot load as a sentence encoder: {str(e).splitlines()[0]}") from None
        self.max_length, self.batch_size, self.device = max_length, batch_size, device

    def encode(self, texts):
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = hf.encode(self.tokenizer, texts[i : i + self.batch_size], None, self.max_length, self.device)
                hidden = self.model(**enc).last_hidden_state
                out.append(hf.mean_pool(hidden, enc["attention_mask"]).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype="float32")

    def similarity(self, a: list[str], b: list[str]):
        """Cosine similarity of each pair (a[i], b[i])."""
        import numpy as np

        ea, eb = self.encode(a), self.encode(b)
        ea /= np.linalg.norm(ea, axis=1, keepdims=True).clip(min=1e-12)
        eb /= np.linalg.norm(eb, axis=1, keepdims=True).clip(min=1e-12)
        return (ea * eb).sum(1)
