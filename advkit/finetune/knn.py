"""KNN-BERT's model: query encoder, momentum (key) encoder, projection heads and a labelled queue.

Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*, arXiv 2110.02523 (2021),
after He et al.'s MoCo (`moco/builder.py`): the key encoder follows the query encoder by EMA,
theta_k <- m * theta_k + (1 - m) * theta_q, and the queue with its pointer are module buffers.

The linear head is the Hugging Face classifier's own, so `OUT/model` stays a plain HF
classifier that any tool can load; `pooling` picks the representation that feeds the
projection head (and so the contrastive space and the KNN datastore).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from advkit.hf import pool
from advkit.predictor import ProjectionHead


class KnnBert(nn.Module):
    """The classifier (query encoder f_q + linear head h) with the parts each method needs.

    - `ce`: the classifier alone.  `scl`: also returns the pooled representation.
    - `moco`, `knn` (`momentum_contrast=True`): projection head g_q, momentum copies f_k and g_k,
      and a queue of `queue_size` L2-normalised keys with their labels (-1: empty slot).
    """

    def __init__(self, classifier, pooling: str = "pooler", momentum_contrast: bool = False,
                 projection_dim: int = 128, queue_size: int = 32000, momentum: float = 0.999):
        super().__init__()
        self.classifier = classifier
        self.pooling = pooling
        self.momentum = momentum
        self.momentum_contrast = momentum_contrast
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
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.momentum_contrast:
            self.momentum_encoder.eval()
        return self

    def forward(self, enc: dict):
        """(logits, representation, q): q is the normalised projection (None without momentum contrast)."""
        out = self.classifier(**enc, output_hidden_states=True)
        rep = pool(out.hidden_states[-1], enc["attention_mask"], self.pooling, self.classifier.base_model)
        q = F.normalize(self.projection(rep).float(), dim=1) if self.momentum_contrast else None
        return out.logits, rep, q

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
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Write the keys at the pointer, wrapping around; across processes, all of them (all-gather)."""
        keys, labels = gather(keys.float()), gather(labels)
        size = self.queue.size(0)
        if len(keys) > size:  # more keys than slots: the newest win
            keys, labels = keys[-size:], labels[-size:]
        ptr = int(self.queue_ptr)
        slots = (torch.arange(len(keys), device=keys.device) + ptr) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_labels[slots] = labels.to(self.queue_labels.device)
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
