"""Contrastive losses of KNN-BERT and its baselines, one small `nn.Module` each.

References:
- Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*, arXiv 2110.02523 (2021):
  the supervised momentum-contrastive loss (`SupervisedMomentumContrastiveLoss`).
- He et al., *Momentum Contrast for Unsupervised Visual Representation Learning*, CVPR 2020: the
  queue of keys; `MoCoLoss` is its supervised variant with one random same-class key as positive.
- Gunel et al., *Supervised Contrastive Learning for Pre-trained Language Model Fine-tuning*,
  ICLR 2021: the in-batch loss (`SupervisedContrastiveLoss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SupervisedContrastiveLoss(nn.Module):
    """Gunel et al. 2021, in-batch supervised contrastive loss (SCL).

    For each anchor i with at least one other same-label example in the batch:
    L_i = -1/|P(i)| sum_{j in P(i)} log( exp(z_i.z_j/tau) / sum_{k != i} exp(z_i.z_k/tau) ),
    averaged over those anchors. The embeddings are L2-normalised here.

    The reference code minimises exp(s_ij/tau)/sum exp without the log, and so pushes
    same-class pairs apart; this one pulls them together (tests/test_finetune_knn.py proves it).

    Args:
        tau: temperature (0.3 in Gunel et al.).

    Inputs: z (B, d) embeddings, labels (B,) -> scalar loss (0 when no anchor has a positive).
    """

    def __init__(self, tau: float = 0.3):
        super().__init__()
        self.tau = tau

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = F.normalize(z.float(), dim=1)
        self_pair = torch.eye(len(z), dtype=torch.bool, device=z.device)
        sims = (z @ z.T / self.tau).masked_fill(self_pair, float("-inf"))
        log_prob = sims - torch.logsumexp(sims, dim=1, keepdim=True)
        positive = (labels[:, None] == labels[None, :]) & ~self_pair
        count = positive.sum(1)
        per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(1) / count.clamp(min=1)
        has = count > 0
        return per_anchor[has].mean() if has.any() else z.sum() * 0.0


class SupervisedMomentumContrastiveLoss(nn.Module):
    """KNN-BERT's supervised momentum-contrastive loss over a labelled queue of keys.

    For a query q with label y, positives are queue keys with label y (or, with
    `positives`, keys of same-label examples drawn for this query); the `top_k` most
    similar and the `end_k` least similar (hardest) are kept. Negatives are all queue keys
    of another label. For each kept positive p:
        l_p = -log( e^{q.p/tau} / (e^{q.p/tau} + sum_n e^{q.n/tau}) ) = softplus(lse_n - q.p/tau),
    and the loss is the mean of l_p over every kept (query, positive) pair. A query with no
    positive or no negative adds nothing (its example still gets the cross-entropy).

    Departure from the reference: it keeps the most similar negatives truncated to the smallest
    count in the batch, which makes a query's loss depend on the rest of the batch; here every
    other-label key is a negative (MoCo's habit), one B x K matmul for all of them.

    Args:
        tau: temperature (0.07).
        top_k: most similar positives kept per query (100 in the reference code, 10 in its AG News script).
        end_k: least similar positives kept per query (1).

    A key is never a positive (nor a negative) of its own example: with `ids` (the batch's example
    ids) and `queue_ids` (the example each key was encoded from), same-id entries are masked out.
    A queue that outlives an epoch holds stale copies of the query itself, and without the mask
    they are its most similar "positives": instance discrimination, not class clustering.

    Inputs: q (B, d) and queue (K, d) L2-normalised; labels (B,); queue_labels (K,) with -1 for
    empty slots; positives (B, N, d) optional; ids (B,) and queue_ids (K,) optional -> scalar loss.
    """

    def __init__(self, tau: float = 0.07, top_k: int = 100, end_k: int = 1):
        super().__init__()
        self.tau, self.top_k, self.end_k = tau, top_k, end_k

    def select_positives(self, sims: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        """Boolean mask (B, M) of the kept positives among the `candidate` entries."""
        keep = torch.zeros_like(candidate)
        width = sims.size(1)
        if self.top_k and width:
            keep.scatter_(1, sims.masked_fill(~candidate, float("-inf")).topk(min(self.top_k, width), 1).indices, True)
        if self.end_k and width:
            keep.scatter_(1, (-sims).masked_fill(~candidate, float("-inf")).topk(min(self.end_k, width), 1).indices,
                          True)
        return keep & candidate

    def select(self, q, labels, queue, queue_labels, positives=None, ids=None, queue_ids=None):
        """(positive_sims, keep, negatives_lse): similarities / tau of the positive candidates (B, K)
        or (B, N), the mask of the kept positives among them, and the log-sum-exp over each query's
        negatives (-inf when it has none)."""
        q = q.float()
        sims = q @ queue.float().T / self.tau  # (B, K): one matmul, not a B x K x d tensor
        usable = queue_labels >= 0  # filled slots
        if ids is not None and queue_ids is not None:  # never the query's own (stale) key
            usable = usable & (ids[:, None] != queue_ids[None, :])
        same = labels[:, None] == queue_labels[None, :]
        negative = ~same & usable
        negatives_lse = torch.logsumexp(sims.masked_fill(~negative, float("-inf")), dim=1)  # -inf if none
        if positives is None:
            positive_sims, candidate = sims, same & usable
        else:
            positive_sims = torch.einsum("bd,bnd->bn", q, positives.float()) / self.tau
            candidate = torch.ones_like(positive_sims, dtype=torch.bool)
        keep = self.select_positives(positive_sims, candidate) & negative.any(1, keepdim=True)
        return positive_sims, keep, negatives_lse

    def forward(self, q, labels, queue, queue_labels, positives=None, ids=None, queue_ids=None) -> torch.Tensor:
        positive_sims, keep, negatives_lse = self.select(q, labels, queue, queue_labels, positives, ids, queue_ids)
        per_pair = F.softplus(negatives_lse[:, None] - positive_sims)
        return torch.where(keep, per_pair, 0.0).sum() / keep.sum().clamp(min=1)


class MoCoLoss(SupervisedMomentumContrastiveLoss):
    """The MoCo baseline of KNN-BERT: one random same-class key per query is the positive.

    Same negatives and formula as `SupervisedMomentumContrastiveLoss`; the random draw uses
    torch's global generator, so it is seeded by the run's seed.
    """

    def __init__(self, tau: float = 0.07):
        super().__init__(tau=tau, top_k=1, end_k=0)

    def select_positives(self, sims, candidate):
        score = torch.rand(sims.shape, device=sims.device).masked_fill(~candidate, -1.0)
        keep = torch.zeros_like(candidate).scatter_(1, score.argmax(1, keepdim=True), True)
        return keep & candidate
