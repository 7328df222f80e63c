"""Pseudo-perplexity under a masked LM (Salazar et al., ACL 2020): attack-zh's fluency score and
the ONION defence's word-suspicion score, both from a local model (no causal LM ships here).

PPPL = exp(-mean_t log P(w_t | the text without w_t)), each token masked in turn, batched.
"""

from __future__ import annotations

import math

from advkit import hf, models


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
