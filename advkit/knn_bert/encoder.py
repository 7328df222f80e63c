"""KNN-BERT's model: query encoder, momentum (key) encoder, projection heads and a labelled queue.

Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*, arXiv 2110.02523 (2021),
after He et al.'s MoCo (`moco/builder.py`): the key encoder follows the query encoder by EMA,
theta_k <- m * theta_k + (1 - m) * theta_q, and the queue with its pointer are module buffers.

The linear head is the Hugging Face classifier's own, so `OUT/model` stays a HF classifier that
any tool can load; `pooling` picks the one representation that the linear head, the projection
head (so the contrastive space) and the KNN datastore all read (`advkit.victim.head_forward`;
"pooler" is the HF model's own forward). The pooling is written into OUT/model/config.json, so
`advkit.predictor.load_predictor` rebuilds the same head.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from advkit.hf import pool
from advkit.knn_bert.predictor import ProjectionHead
from advkit.victim import head_forward

MOMENTUM_RANGE = (0.9, 0.999)


def derived_momentum(total_steps: int) -> float:
    """The default EMA of the key encoder for a run of `total_steps` optimiser steps.

    m = 1 - 10 / total_steps, clipped to [0.9, 0.999]: the EMA's time constant 1 / (1 - m) is a
    tenth of the run, so by the end the initial weights keep a share m^T ~ e^-10 of the key
    encoder and a key lags the query encoder by about T/10 steps, within the run. MoCo's 0.999
    (a 1,000-step time constant) suits its ~10^6-step runs, and is kept from 10,000 steps on; on a
    32-step run it leaves the key encoder 0.999^32 = 97 % at its start (its projection a random
    copy). Below 100 steps the clip at 0.9 (a 10-step time constant) keeps consecutive keys
    comparable rather than letting the key encoder copy every step's noise.
    """
    if total_steps <= 0:
        return MOMENTUM_RANGE[1]
    return min(max(1.0 - 10.0 / total_steps, MOMENTUM_RANGE[0]), MOMENTUM_RANGE[1])


class FinetuneModel(nn.Module):
    """The classifier (query encoder f_q + linear head h) with the parts each method needs.

    - `ce`: the classifier alone.  `scl`: also returns the pooled representation.
    - `moco`, `knn` (`momentum_contrast=True`): projection head g_q, momentum copies f_k and g_k,
      and a queue of `queue_size` L2-normalised keys with their labels (-1: empty slot) and the ids of
      the examples they were encoded from (-1: unknown), so that the loss never pairs a query with
      its own key.
    """

    def __init__(self, classifier, pooling: str = "pooler", momentum_contrast: bool = False,
                 projection_dim: int = 128, queue_size: int = 32000, momentum: float = 0.999):
        super().__init__()
        self.classifier = classifier
        self.pooling = pooling
        self.momentum = momentum
        self.momentum_contrast = momentum_contrast
        pooler = getattr(classifier.base_model, "pooler", None)
        if pooling != "pooler" and isinstance(pooler, nn.Module):
            for p in pooler.parameters():  # off the loss's path (the head reads cls or mean): not trained
                p.requires_grad = False
        if not momentum_contrast:
            return
        hidden = classifier.config.hidden_size
        self.projection = ProjectionHead(hidden, projection_dim)
        self.momentum_encoder = copy.deepcopy(classifier.base_model)
        self.momentum_projection = copy.deepcopy(self.projection)
        for p in list(self.momentum_encoder.parameters()) + list(self.momentum_projection.parameters()):
            p.requires_grad = False
        self.momentum_encoder.eval()  # keys without dropout noise; train() below keeps it so
        # Empty slots have label -1 and take part in nothing; the reference filled the queue with
        # unprojected, unnormalised vectors (normalised along the wrong axis).
        self.register_buffer("queue", torch.zeros(queue_size, projection_dim))
        self.register_buffer("queue_labels", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ids", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.momentum_contrast:
            self.momentum_encoder.eval()
        return self

    def forward(self, enc: dict, represent: bool = True):
        """(logits, representation, q): the head reads the pooled representation; q is its normalised
        projection (None without momentum contrast). represent=False: the logits alone (CE), so that
        pooling "pooler" needs no pooler beyond the HF model's own forward."""
        logits, rep = head_forward(self.classifier, enc, self.pooling, represent=represent)
        q = F.normalize(self.projection(rep).float(), dim=1) if self.momentum_contrast and represent else None
        return logits, rep, q

    @torch.no_grad()
    def keys(self, enc: dict) -> torch.Tensor:
        """k = g_k(f_k(x)), L2-normalised."""
        hidden = self.momentum_encoder(**enc).last_hidden_state
        rep = pool(hidden, enc["attention_mask"], self.pooling, self.momentum_encoder)
        return F.normalize(self.momentum_projection(rep).float(), dim=1)

    def _pairs(self):
        yield from zip(self.classifier.base_model.parameters(), self.momentum_encoder.parameters())
        yield from zip(self.projection.parameters(), self.momentum_projection.parameters())

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_k <- m theta_k + (1 - m) theta_q. Under DDP every process holds the same theta_q
        after the all-reduced step, so each updates its own copy identically (DataParallel lost it)."""
        for q, k in self._pairs():
            k.mul_(self.momentum).add_(q.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Write the keys, their labels and example ids at the pointer, wrapping around; across
        processes, all of them (all-gathered in rank order)."""
        if ids is None:
            ids = torch.full_like(labels, -1)
        keys, labels, ids = gather(keys.float()), gather(labels), gather(ids.to(labels.device))
        size = self.queue.size(0)
        if len(keys) > size:  # more keys than slots: the newest win
            keys, labels, ids = keys[-size:], labels[-size:], ids[-size:]
        ptr = int(self.queue_ptr)
        slots = (torch.arange(len(keys), device=keys.device) + ptr) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_labels[slots] = labels.to(self.queue_labels.device)
        self.queue_ids[slots] = ids.to(self.queue_ids.device)
        self.queue_ptr[0] = (ptr + len(keys)) % size

    def filled_queue(self):
        """(keys, labels) of the slots written so far."""
        filled = self.queue_labels >= 0
        return self.queue[filled], self.queue_labels[filled]


def gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenate `t` from every process (rank order); `t` itself when not distributed."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    # all_gather needs equal shapes: pad every part to the longest, then cut the padding off.
    sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(t)], device=t.device))
    longest = int(max(sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: len(t)] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(n)] for part, n in zip(parts, sizes)])
