"""Fluency scores.

- `CharNgram`: perplexity under an interpolated Kneser-Ney character trigram LM (Chen & Goodman
  1998) counted on the Chinese training splits: attack-zh's default fluency judge. It proposes
  no substitutes (every masked LM here does: the chars and pieces generators), reads Simplified
  text natively, and costs nothing next to a pseudo-perplexity (one pass per character).
- `PseudoPerplexity` under a masked LM (Salazar et al., ACL 2020): the ONION defence's
  word-suspicion score, and attack-zh's `--fluency-lm MODEL`.
  PPPL = exp(-mean_t log P(w_t | the text without w_t)), each token masked in turn, batched.
"""

from __future__ import annotations

import math
from collections import Counter

from advkit import hf, models

NGRAM = "ngram"  # --fluency-lm's name for the character n-gram judge


class CharNgram:
    """Interpolated Kneser-Ney over characters, order 3, one discount D per order:
    P(w | uv) = max(c(uvw) - D, 0) / c(uv.) + D * N1+(uv.) / c(uv.) * P2(w | v), where P2 uses
    continuation counts N1+(.vw) the same way and bottoms out in N1+(.w) / N1+(..) mixed with a
    uniform share for characters never seen. Lines are padded with start and end marks."""

    BOS, EOS = "\x02", "\x03"

    def __init__(self, lines, discount: float = 0.75):
        self.d = discount
        tri = Counter()
        for line in lines:
            padded = self.BOS * 2 + line + self.EOS
            tri.update(padded[i : i + 3] for i in range(len(padded) - 2))
        self.tri = tri
        self.ctx2, self.types2 = Counter(), Counter()  # c(uv.), N1+(uv.)
        cont2 = Counter()  # N1+(.vw)
        for g, n in tri.items():
            self.ctx2[g[:2]] += n
            self.types2[g[:2]] += 1
            cont2[g[1:]] += 1
        self.cont2 = cont2
        self.ctx1, self.types1, cont1 = Counter(), Counter(), Counter()  # N1+(.v.), N1+(v.) over cont2, N1+(.w)
        for g in cont2:
            self.ctx1[g[0]] += cont2[g]
            self.types1[g[0]] += 1
            cont1[g[1]] += 1
        self.cont1, self.total1 = cont1, sum(cont1.values())
        self.vocab = len(cont1) + 1  # + one slot for every unseen character

    def prob(self, u: str, v: str, w: str) -> float:
        d = self.d
        p = max(self.cont1[w] - d, 0) / self.total1 + d * len(self.cont1) / self.total1 / self.vocab
        n = self.ctx1[v]
        if n:
            p = max(self.cont2[v + w] - d, 0) / n + d * self.types1[v] / n * p
        n = self.ctx2[u + v]
        if n:
            p = max(self.tri[u + v + w] - d, 0) / n + d * self.types2[u + v] / n * p
        return p

    def __call__(self, text: str) -> float | None:
        if not text:
            return None
        padded = self.BOS * 2 + text + self.EOS
        logp = sum(math.log(self.prob(*padded[i : i + 3])) for i in range(len(padded) - 2))
        return math.exp(-logp / (len(padded) - 2))


class PseudoPerplexity:
    """PPPL = exp(-mean_t log P(w_t | text without w_t)), each token masked in turn (one batch)."""

    def __init__(self, ref: str, device: str, max_length: int, flag: str = "--fluency-lm"):
        self.model, self.tokenizer = models.load_masked_lm(ref, flag, device)
        self.device, self.max_length = device, max_length

    def __call__(self, text: str) -> float | None:
        import torch

        # a Traditional-script LM (albert-tiny-zh) scores the text converted to Traditional (hf.model_text)
        ids = self.tokenizer(hf.model_text(self.tokenizer, text), truncation=True, max_length=self.max_length)["input_ids"]
        inner = list(range(1, len(ids) - 1))  # not [CLS] / [SEP]
        if not inner:
            return None
        batch = torch.tensor([ids] * len(inner))
        batch[torch.arange(len(inner)), torch.tensor(inner)] = self.tokenizer.mask_token_id
        total = 0.0
        with torch.inference_mode():
            for s in range(0, len(inner), 64):
                logits = self.model(input_ids=batch[s : s + 64].to(self.device)).logits.float()
                rows = torch.arange(logits.shape[0])
                at = torch.tensor(inner[s : s + 64])
                logp = torch.log_softmax(logits[rows, at], dim=-1)
                total += float(logp[rows, torch.tensor([ids[t] for t in inner[s : s + 64]])].sum())
        return math.exp(-total / len(inner))
