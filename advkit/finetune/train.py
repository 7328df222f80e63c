"""Fine-tune a pre-trained encoder with a fresh classification head.

`--method ce`: cross-entropy on the linear head, AdamW with a linear schedule and
warm-up. The loop reads top to bottom (nanoGPT's habit); batches are padded to their
longest member.
"""

from __future__ import annotations

import math
import time

from advkit import data, evaluate, models
from advkit.config import FinetuneConfig, as_dict
from advkit.errors import UserError
from advkit.progress import track
from advkit.results import RunDir


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_splits(cfg: FinetuneConfig):
    opts = dict(root=cfg.data_root, text_column=cfg.text_column, text_b_column=cfg.text_b_column,
                label_column=cfg.label_column)
    train = data.load(cfg.dataset, cfg.train_split, **opts)
    dev = data.load(cfg.dataset, cfg.eval_split, **opts)
    for split in (train, dev):
        if not split.labelled:
            raise UserError(f"{cfg.dataset}: split '{split.split}' is unlabelled; choose a labelled split")
    train.examples = data.sample(train.examples, cfg.train_limit, seed=cfg.seed)
    dev.examples = data.sample(dev.examples, cfg.limit)
    return train, dev


def run(cfg: FinetuneConfig, out: RunDir) -> dict:
    """Train, save the model under OUT/model, evaluate on the eval split; returns metrics.json."""
    train, dev = load_splits(cfg)
    seed_everything(cfg.seed)
    model, tokenizer, _ = models.load_classifier(cfg.model, num_labels=len(train.labels), label_names=train.labels)
    out.create(as_dict(cfg))
    import torch

    device = torch.device(cfg.device)
    model.to(device).train()
    steps_per_epoch = math.ceil(len(train.examples) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    warmup = int(cfg.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    order = torch.Generator().manual_seed(cfg.seed)
    losses, started = [], time.time()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(train.examples), generator=order).tolist()
        batches = [perm[i : i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
        for idx in track(batches, f"epoch {epoch + 1}/{cfg.epochs}"):
            batch = [train.examples[i] for i in idx]
            enc = tokenizer([e.text for e in batch], [e.text_b for e in batch] if batch[0].text_b else None,
                            padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt").to(device)
            labels = torch.tensor([e.label for e in batch], device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(**enc).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    train_seconds = time.time() - started
    model.eval()
    save_model(model, tokenizer, out.path / "model")
    victim = models.Victim(model, tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device)
    clean = evaluate.clean_accuracy(victim, dev.examples)
    metrics = {
        "eval_accuracy": clean["accuracy"],
        "eval_split": dev.split,
        "eval_examples": len(dev.examples),
        "train_examples": len(train.examples),
        "train_steps": total,
        "train_loss_first": losses[0],
        "train_loss_last_epoch": sum(losses[-steps_per_epoch:]) / steps_per_epoch,
        "train_seconds": round(train_seconds, 2),
    }
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)


def save_model(model, tokenizer, folder) -> None:
    """Hugging Face format with safetensors, written beside and renamed into place."""
    import shutil

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
