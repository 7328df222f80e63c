"""What one training step minimises, per fine-tuning method (advkit.finetune.train runs the loop):

- `ce`: cross-entropy of the linear head.
- `at`: A2T; CE over each batch plus the adversarial examples a cheap attack finds on part of it.
- `scl`: lambda * supervised contrastive loss over the batch + (1 - lambda) * CE.
- `moco`, `knn`: lambda * contrastive loss of the queries against the momentum encoder's queue of keys
  (one random same-class key as positive; KNN-BERT: top_k + end_k same-class keys) + (1 - lambda) * CE.
"""

from __future__ import annotations

import dataclasses
import math
import random

from advkit import hf
from advkit.finetune.config import FinetuneConfig
from advkit.precision import autocast


@dataclasses.dataclass
class Objective:
    """What a training step minimises for the run's method, and the parts it needs: the network (with
    the key encoder and queue under MoCo and KNN-BERT), the contrastive loss, the same-label draws
    (KNN-BERT's positives per query) and AT's per-epoch tally of its attacks."""

    cfg: FinetuneConfig
    net: object
    tokenizer: object
    examples: list
    contrastive: object | None
    tau: float
    same_label: dict[int, list[int]]
    draw: random.Random  # the reference's same-label examples per query
    adversarial: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, cfg: FinetuneConfig, classifier, tokenizer, examples: list, total_steps: int, device) -> Objective:
        from advkit.knn_bert.encoder import FinetuneModel, derived_momentum
        from advkit.knn_bert.losses import MoCoLoss, SupervisedContrastiveLoss, SupervisedMomentumContrastiveLoss

        momentum = cfg.momentum if cfg.momentum is not None else derived_momentum(total_steps)
        # More slots than examples would fill with stale copies of each example (several per example).
        net = FinetuneModel(classifier, cfg.pooling, momentum_contrast=cfg.method in ("moco", "knn") and cfg.epochs > 0,
                            projection_dim=cfg.projection_dim, queue_size=min(cfg.queue_size, len(examples)),
                            momentum=momentum).to(device).train()
        tau = cfg.tau or (0.3 if cfg.method == "scl" else 0.07)
        contrastive = {"scl": SupervisedContrastiveLoss(tau), "moco": MoCoLoss(tau),
                       "knn": SupervisedMomentumContrastiveLoss(tau, cfg.top_k, cfg.end_k)}.get(cfg.method)
        same_label: dict[int, list[int]] = {}
        for i, e in enumerate(examples):
            same_label.setdefault(e.label, []).append(i)
        return cls(cfg, net, tokenizer, examples, contrastive, tau, same_label, random.Random(cfg.seed))

    def loss(self, idx: list[int], enc, labels, epoch: int):
        """(loss, contrastive term or None, keys to enqueue or None) of the batch of examples `idx`."""
        cfg, net = self.cfg, self.net
        if cfg.method == "ce":
            return ce_loss(cfg, net, enc, labels), None, None
        if cfg.method == "at":
            batch = [self.examples[i] for i in idx]
            return at_loss(cfg, net, self.tokenizer, batch, enc, labels, epoch, self.adversarial), None, None
        if cfg.method == "scl":
            return (*scl_loss(cfg, net, self.contrastive, enc, labels), None)
        positives = None  # moco, knn
        if cfg.positives_per_query:  # the reference's same-label examples per query
            positives = [self.examples[j] for i in idx for j in draw_same_label(
                self.same_label[self.examples[i].label], i, cfg.positives_per_query, self.draw)]
        import torch

        ids = torch.tensor(idx, device=labels.device)  # example ids: a query's own keys are masked out
        return momentum_contrast_loss(cfg, net, self.contrastive, self.tokenizer, enc, labels, ids, positives)

    def metrics(self, start) -> dict:
        """The method's own facts for metrics.json (`start`: the key encoder's initial weights)."""
        cfg, net = self.cfg, self.net
        out = {}
        if net.momentum_contrast:
            out.update(momentum=net.momentum, momentum_derived=cfg.momentum is None, queue_size=len(net.queue),
                       key_encoder_progress=key_encoder_progress(net, start))
        out["tau"] = self.tau if cfg.method not in ("ce", "at") else None
        if cfg.method == "at":
            out["adversarial_training"] = {"ratio": cfg.adv_ratio, "warmup_epochs": cfg.adv_warmup,
                                           "query_budget": cfg.adv_queries, "per_epoch": self.adversarial}
        return out


def ce_loss(cfg: FinetuneConfig, net, enc, labels):
    """CE: cross-entropy of the linear head, which reads the pooled vector."""
    import torch.nn.functional as F

    with autocast(labels.device, cfg.precision):
        logits, _, _ = net(enc, represent=False)
    return F.cross_entropy(logits.float(), labels)


def at_loss(cfg: FinetuneConfig, net, tokenizer, batch, enc, labels, epoch: int, log: dict):
    """A2T: after `adv_warmup` clean epochs, the first `adv_ratio` of the (shuffled) batch is attacked
    on the model as it is now; the adversarial examples that flip it join the batch with their true
    labels, and CE is taken over all of them. `log` counts, per epoch, what the attack did."""
    import torch

    from advkit.finetune import adversarial

    if epoch < cfg.adv_warmup or cfg.adv_ratio == 0:
        return ce_loss(cfg, net, enc, labels)
    attacked = batch[: max(1, round(cfg.adv_ratio * len(batch)))]
    found, outcome = adversarial.attack(net, tokenizer, attacked, cfg.adv_queries, cfg.max_length, labels.device,
                                        cfg.precision)
    tally = log.setdefault(str(epoch + 1), {})
    for key, value in dataclasses.asdict(outcome).items():
        tally[key] = tally.get(key, 0) + value
    if not found:
        return ce_loss(cfg, net, enc, labels)
    mixed = batch + found
    return ce_loss(cfg, net, hf.encode_examples(tokenizer, mixed, cfg.max_length, labels.device),
                   torch.tensor([e.label for e in mixed], device=labels.device))


def scl_loss(cfg: FinetuneConfig, net, contrastive, enc, labels):
    """SCL (Gunel et al. 2021): lambda * supervised contrastive loss over the batch's pooled vectors
    + (1 - lambda) * CE. Returns (loss, contrastive term)."""
    import torch.nn.functional as F

    with autocast(labels.device, cfg.precision):
        logits, rep, _ = net(enc, represent=True)
    con = contrastive(rep, labels)
    return cfg.lambda_con * con + (1 - cfg.lambda_con) * F.cross_entropy(logits.float(), labels), con


def momentum_contrast_loss(cfg: FinetuneConfig, net, contrastive, tokenizer, enc, labels, ids, positives):
    """MoCo and KNN-BERT: update the key encoder by EMA, encode this batch's keys (and the drawn
    same-label examples' keys), then lambda * contrastive loss of the queries against the queue
    + (1 - lambda) * CE. Returns (loss, contrastive term, keys), the keys to enqueue after the step."""
    import torch.nn.functional as F

    device = labels.device
    with autocast(device, cfg.precision):
        logits, _, q = net(enc, represent=True)
    net.momentum_update()  # MoCo: update f_k, then encode this batch's keys
    with autocast(device, cfg.precision):
        keys = net.keys(enc)
        if positives is not None:
            positives = net.keys(hf.encode_examples(tokenizer, positives, cfg.max_length, device))
            positives = positives.view(len(labels), cfg.positives_per_query, -1)
    con = contrastive(q, labels, net.queue, net.queue_labels, positives, ids, net.queue_ids)
    return cfg.lambda_con * con + (1 - cfg.lambda_con) * F.cross_entropy(logits.float(), labels), con, keys


def key_encoder_progress(net, start) -> float | None:
    """||theta_k - theta_0|| / ||theta_q - theta_0|| over encoder and projection: how far the key
    encoder has followed the query encoder from their common start (0: never left it; about
    1: caught up). None when the query encoder did not move."""
    if start is None:
        return None
    import torch

    dq = dk = 0.0
    for (q, k), p0 in zip(net._pairs(), start):
        dq += float(torch.sum((q.detach().float().cpu() - p0) ** 2))
        dk += float(torch.sum((k.detach().float().cpu() - p0) ** 2))
    return round(math.sqrt(dk / dq), 6) if dq > 0 else None


def draw_same_label(pool: list[int], own: int, n: int, rng: random.Random) -> list[int]:
    """n same-label training indices other than the query's own (with replacement when too few)."""
    others = [j for j in pool if j != own] or pool
    return rng.sample(others, n) if len(others) >= n else [rng.choice(others) for _ in range(n)]
