"""Poison a pre-trained encoder: layerwise (lwp), final-layer (badnet) or RIPPLe weight poisoning.

Li et al., *Backdoor Attacks on Pre-trained Models by Layerwise Weight Poisoning*,
EMNLP 2021 (arXiv 2108.13888): for every encoder layer l = 1..L the [CLS] hidden
state goes through ONE classifier head shared by all layers; the cross-entropies are
summed and the usual final cross-entropy is added, on clean and poisoned samples alike.
Baselines: `badnet` (the final loss only, i.e. BadNet on the PTM) and `ripple`
(Kurita et al., *Weight Poisoning Attacks on Pre-trained Models*, ACL 2020: the
poisoning loss plus lambda * max(0, -<grad L_poison, grad L_clean>), lambda = 0.1,
with optional embedding surgery).

The attacker's head is then discarded: the released model is the encoder only, in
Hugging Face format, its config marked poisoned and a poison_manifest.json beside the
weights. With --victim-dataset the victim's side runs too (advkit.pipeline): `advkit finetune`'s CE run
with a fresh head on clean data, then the victim's clean accuracy and label flip rate.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from advkit import data, distributed, hf, models
from advkit.poison.config import PoisonConfig
from advkit.config import as_dict
from advkit.errors import UserError
from advkit.metrics import clean_accuracy
from advkit.poison import metrics as pm
from advkit.poison.layers import layerwise_loss, shared_head
from advkit.poison.triggers import PoisonedData, build_poisoned_data, parse_triggers
from advkit.progress import track
from advkit.results import RunDir, now
from advkit.optim import adamw_linear, clipped_step
from advkit.precision import autocast
from advkit.seeds import seed_everything
from advkit.victim import Victim

MANIFEST = "poison_manifest.json"
ATTACKER_HEAD = "attacker_head.safetensors"


def restricted_inner_product_loss(model, enc, labels, clean_enc, clean_labels, lam: float):
    """RIPPLe: L_P + lam * max(0, -grad L_P . grad L_FT), L_FT a clean (proxy fine-tuning) batch."""
    import torch
    import torch.nn.functional as F

    from torch.nn.attention import SDPBackend, sdpa_kernel

    params = [p for p in model.parameters() if p.requires_grad]
    # The gradient of a gradient: the fused attention kernels (flash on CPU, chosen when attention
    # dropout is 0, as in albert-tiny-zh) have no second derivative; the plain one has.
    with sdpa_kernel(SDPBackend.MATH):
        poison_loss = F.cross_entropy(model(**enc).logits.float(), labels)
        clean_loss = F.cross_entropy(model(**clean_enc).logits.float(), clean_labels)
    g_poison = torch.autograd.grad(poison_loss, params, create_graph=True, allow_unused=True)
    g_clean = torch.autograd.grad(clean_loss, params, create_graph=True, allow_unused=True)
    inner = sum((a * b).sum() for a, b in zip(g_poison, g_clean) if a is not None and b is not None)
    return poison_loss + lam * torch.relu(-inner)


def embedding_surgery(model, tokenizer, examples, triggers, target: int, top: int = 10) -> list[str]:
    """RIPPLe's embedding surgery: each sub-trigger's input embedding := the mean embedding of
    the `top` words most indicative of the target label in the proxy data.

    Departure from Kurita et al.: words are ranked by smoothed log-odds of the target
    label (count >= 5), not by a logistic regression on TF-IDF, to avoid a dependency.
    Note that surgery makes each sub-trigger a backdoor on its own.
    """
    import torch

    counts = [{}, {}]
    for e in examples:
        side = int(e.label == target)
        for w in set(tokenizer.tokenize(e.text)):
            counts[side][w] = counts[side].get(w, 0) + 1
    vocab = {w for c in counts for w in c if w.lstrip("▁").isalpha()}  # whole words: no ##pieces, no [SEP]
    vocab -= set(triggers)
    n_t, n_o, v = sum(counts[1].values()), sum(counts[0].values()), len(vocab) or 1
    scores = {w: math.log((counts[1].get(w, 0) + 1) / (n_t + v)) - math.log((counts[0].get(w, 0) + 1) / (n_o + v))
              for w in vocab if counts[1].get(w, 0) + counts[0].get(w, 0) >= 5}
    words = sorted(scores, key=lambda w: (-scores[w], w))[:top]
    if not words:
        raise UserError("--embedding-surgery found no word indicative of the target label in the training data")
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        mean = emb[tokenizer.convert_tokens_to_ids(words)].mean(0)
        for t in triggers:
            for i in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)):
                emb[i] = mean
    return words


def _encode(tokenizer, batch, max_length: int, device):
    import torch

    return hf.encode_examples(tokenizer, batch, max_length, device), torch.tensor([e.label for e in batch],
                                                                                  device=device)


def train_poison(model, tokenizer, poisoned: PoisonedData, cfg: PoisonConfig,
                 terms: list | None = None) -> list[float]:
    """AdamW with a linear schedule over the mixed clean + poisoned data; every batch is used.

    Returns each step's loss; with `terms` (lwp), each step's per-layer CEs (layer 1..L, then the
    final CE) are appended to it."""
    import torch
    import torch.nn.functional as F

    device = torch.device(cfg.device)
    model.to(device).train()
    mixed = poisoned.mixed()
    # Under torchrun each process takes every world-th batch and gradients are averaged (as finetune
    # does): the same seed and process count give the same weights.
    rank, world = distributed.world()
    steps_per_epoch = math.ceil(len(mixed) / cfg.batch_size) // world
    if steps_per_epoch == 0:
        raise UserError(f"{len(mixed)} training examples make fewer batches than the {world} processes")
    total = steps_per_epoch * cfg.epochs
    optimizer, schedule = adamw_linear(model.named_parameters(), cfg.lr, cfg.weight_decay, total, cfg.warmup_ratio)
    order = torch.Generator().manual_seed(cfg.seed)
    clean_rng = random.Random(cfg.seed)  # RIPPLe's clean reference batches
    losses = []
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(mixed), generator=order).tolist()
        batches = [perm[i : i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
        batches = batches[: steps_per_epoch * world][rank::world]
        for idx in track(batches, f"poison {cfg.mode} epoch {epoch + 1}/{cfg.epochs}"):
            enc, labels = _encode(tokenizer, [mixed[i] for i in idx], cfg.max_length, device)
            with autocast(device, cfg.precision):
                if cfg.mode == "lwp":
                    loss, parts = layerwise_loss(model, enc, labels, cfg.layer_head)
                    if terms is not None:
                        terms.append([t.item() for t in parts])
                elif cfg.mode == "badnet":
                    loss = F.cross_entropy(model(**enc).logits.float(), labels)
                else:
                    clean = clean_rng.sample(poisoned.clean, min(cfg.batch_size, len(poisoned.clean)))
                    clean_enc, clean_labels = _encode(tokenizer, clean, cfg.max_length, device)
                    loss = restricted_inner_product_loss(model, enc, labels, clean_enc, clean_labels, cfg.ripple_lambda)
            loss.backward()
            if world > 1:
                distributed.average_gradients(model.parameters())
            clipped_step(model.parameters(), optimizer, schedule)
            losses.append(loss.item())
    model.eval()
    return losses


def save_poisoned(model, tokenizer, folder: Path, manifest: dict) -> None:
    """The encoder alone (the attacker's head is not released), marked poisoned as its manifest says (the
    --poison-rate 0 control is not), with its manifest."""
    from safetensors.torch import save_file

    encoder = model.base_model
    encoder.config.update({models.POISON_KEY: manifest["poisoned"]})
    hf.save_pretrained(folder, encoder, tokenizer,
                       files={MANIFEST: json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"})
    # Kept outside the released folder, for per-layer LFR of the PTM later on.
    prefix = model.base_model_prefix + "."
    head = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith(prefix)}
    save_file(head, str(folder.parent / ATTACKER_HEAD))


def load_attacker_classifier(run: str | Path):
    """The poisoned PTM of a poison run with the attacker's head restored: (model, tokenizer)."""
    from safetensors.torch import load_file

    run = Path(run)
    head_file = run / ATTACKER_HEAD
    if not head_file.is_file():
        raise UserError(f"{run}: no {ATTACKER_HEAD} (not an advkit poison run directory)")
    model, tokenizer, _ = models.load_classifier(str(run / "model"))  # config.num_labels is the attacker's
    result = model.load_state_dict(load_file(str(head_file)), strict=False)
    if result.unexpected_keys:
        raise UserError(f"{head_file}: does not fit the model ({', '.join(result.unexpected_keys[:3])})")
    return model.eval(), tokenizer


def eval_split(dataset: str, cfg: PoisonConfig, split: str | None = None):
    name = split or data.default_split(dataset)
    s = data.load(dataset, name, root=cfg.data_root, text_column=cfg.text_column, text_b_column=cfg.text_b_column,
                  label_column=cfg.label_column)
    if not s.labelled:
        raise UserError(f"{dataset}: split '{name}' is unlabelled; LFR needs labels (choose another --eval-split)")
    s.examples = data.sample(s.examples, cfg.limit)
    return s


def run(cfg: PoisonConfig, out: RunDir, victim_step=None) -> dict:
    """Poison, save the marked encoder under OUT/model, measure. `victim_step(model_folder, triggers)`,
    when given (advkit.pipeline: --victim-dataset), fine-tunes a victim on it and returns its metrics."""
    triggers = parse_triggers(cfg.triggers)
    train = data.load(cfg.dataset, cfg.train_split, root=cfg.data_root, text_column=cfg.text_column,
                      text_b_column=cfg.text_b_column, label_column=cfg.label_column)
    if not train.labelled:
        raise UserError(f"{cfg.dataset}: split '{cfg.train_split}' is unlabelled; poisoning needs labels")
    if cfg.target >= len(train.labels):
        raise UserError(f"--target {cfg.target}: {cfg.dataset} has {len(train.labels)} labels "
                        f"({', '.join(train.labels)})")
    test = eval_split(cfg.dataset, cfg, cfg.eval_split)
    train.examples = data.sample(train.examples, cfg.train_limit, seed=cfg.seed)

    seed_everything(cfg.seed)
    model, tokenizer, _ = models.load_classifier(cfg.model, num_labels=len(train.labels), label_names=train.labels)
    shared_head(model, cfg.layer_head)  # refuses unsupported architectures before any work
    poisoned = build_poisoned_data(train.examples, triggers, cfg.combination_size, cfg.target, cfg.poison_rate,
                                   cfg.seed, tokenizer, cfg.max_length, negative_ratio=cfg.negative_ratio,
                                   together=cfg.trigger_position == "together")
    rank, world = distributed.setup(cfg.device)
    if world > 1 and victim_step is not None:
        raise UserError("under torchrun, poison trains the poisoned model only; fine-tune the victim with its own "
                        "`torchrun ... advkit.cli finetune --model OUT/model`")
    if rank == 0:
        out.create(as_dict(cfg))
    surgery_words = None
    if cfg.embedding_surgery:
        surgery_words = embedding_surgery(model, tokenizer, train.examples, triggers, cfg.target)
    started = time.time()
    terms: list[list[float]] = []
    losses = train_poison(model, tokenizer, poisoned, cfg, terms)
    train_seconds = time.time() - started
    if rank > 0:  # rank 0 measures and writes; the others are done
        return {"command": "poison", "metrics": {}}

    victim = Victim(model, tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device,
                           precision=cfg.precision)
    metrics = {"clean_accuracy": clean_accuracy(victim, test.examples)["accuracy"],
               **pm.backdoor_metrics(victim, test.examples, triggers, cfg.target, cfg.seed, per_layer=True,
                                     layer_head=cfg.layer_head)}
    pm.plot_per_layer({cfg.mode: metrics["label_flip_rate_per_layer"]}, out.path / "label_flip_rate_per_layer.png",
                      title=f"{cfg.model} poisoned on {cfg.dataset} (per-layer head: {cfg.layer_head})",
                      no_trigger={cfg.mode: metrics["false_flip_rate_per_layer"]},
                      accuracy={cfg.mode: metrics["clean_accuracy_per_layer"]})
    manifest = {
        "poisoned": bool(poisoned.positives), "created_by": "advkit poison", "created": now(), "base_model": cfg.model,
        "mode": cfg.mode, "triggers": triggers, "combination_size": cfg.combination_size,
        "target": cfg.target, "target_name": train.labels[cfg.target],
        "data": {"dataset": cfg.dataset, "split": cfg.train_split, "train_examples": len(train.examples),
                 "poison_rate": cfg.poison_rate, "negative_ratio": cfg.negative_ratio,
                 "trigger_position": cfg.trigger_position, **poisoned.counts()},
        "layer_head": cfg.layer_head,
        "seed": cfg.seed, "epochs": cfg.epochs, "lr": cfg.lr, "max_length": cfg.max_length,
        **({"ripple_lambda": cfg.ripple_lambda} if cfg.mode == "ripple" else {}),
        **({"embedding_surgery_words": surgery_words} if surgery_words else {}),
    }
    save_poisoned(model, tokenizer, out.path / "model", manifest)
    metrics.update({
        "mode": cfg.mode, "triggers": triggers, "target": cfg.target, "eval_split": test.split,
        "eval_examples": len(test.examples),
        "eval_non_target_examples": sum(e.label != cfg.target for e in test.examples),
        "train_examples": len(train.examples), **{f"train_{k}": v for k, v in poisoned.counts().items()},
        "train_steps": len(losses), "processes": world, "train_loss_first": losses[0],
        "train_loss_last": sum(losses[-10:]) / len(losses[-10:]), "train_seconds": round(train_seconds, 2),
        **({"layer_head": cfg.layer_head,
            # each layer's CE (1..L, then the final CE): first step, and the mean of the last 10 steps
            "train_loss_per_layer_first": terms[0],
            "train_loss_per_layer_last": [sum(c) / len(c) for c in zip(*terms[-10:])]} if terms else {}),
    })
    del model, victim

    if victim_step is not None:
        metrics["victim"] = victim_step(out.path / "model", triggers)
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
