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
weights. With --victim-dataset the victim's side runs too: `advkit finetune`'s CE run
with a fresh head on clean data, then the victim's clean accuracy and label flip rate.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

from advkit import data, evaluate, models
from advkit.config import FinetuneConfig, PoisonConfig, as_dict
from advkit.errors import UserError
from advkit.poison import metrics as pm
from advkit.poison.triggers import PoisonedData, build_poisoned_data, parse_triggers
from advkit.progress import track
from advkit.results import RunDir, atomic_write, now
from advkit.optim import adamw_linear, clipped_step
from advkit.seeds import seed_everything

MANIFEST = "poison_manifest.json"
ATTACKER_HEAD = "attacker_head.safetensors"


def shared_head(model):
    """The classifier head as a function of one layer's hidden states ([CLS] at position 0).

    It is the model's own sequence-classification head, so the final CE and every
    layer's CE go through the same parameters.
    """
    kind = model.config.model_type
    if kind == "bert":  # pooler (dense + tanh on [CLS]) -> dropout -> linear, as BertForSequenceClassification
        return lambda h: model.classifier(model.dropout(model.bert.pooler(h)))
    if kind == "albert":
        return lambda h: model.classifier(model.dropout(model.albert.pooler_activation(model.albert.pooler(h[:, 0]))))
    if kind in ("roberta", "xlm-roberta"):  # RobertaClassificationHead takes [CLS] itself
        return lambda h: model.classifier(h)
    raise UserError(f"poison supports BERT, ALBERT and RoBERTa encoders, not '{kind}'")


def layer_logits(model, enc) -> tuple[list, object]:
    """Logits of every encoder layer 1..L through the shared head, and the model's usual output."""
    out = model(**enc, output_hidden_states=True)
    head = shared_head(model)
    # hidden_states[0] is the embedding output; the reference uses layers 1..L.
    return [head(h) for h in out.hidden_states[1:]], out


def layerwise_loss(model, enc, labels):
    """sum_l CE(head(h_l[CLS]), y) for l = 1..L, plus the usual final CE; returns (loss, terms)."""
    import torch.nn.functional as F

    per_layer, out = layer_logits(model, enc)
    terms = [F.cross_entropy(logits.float(), labels) for logits in per_layer]
    terms.append(F.cross_entropy(out.logits.float(), labels))
    return sum(terms), terms


def restricted_inner_product_loss(model, enc, labels, clean_enc, clean_labels, lam: float):
    """RIPPLe: L_P + lam * max(0, -grad L_P . grad L_FT), L_FT a clean (proxy fine-tuning) batch."""
    import torch
    import torch.nn.functional as F

    params = [p for p in model.parameters() if p.requires_grad]
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

    texts_b = [e.text_b for e in batch] if batch[0].text_b is not None else None
    enc = tokenizer([e.text for e in batch], texts_b, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt").to(device)
    return enc, torch.tensor([e.label for e in batch], device=device)


def train_poison(model, tokenizer, poisoned: PoisonedData, cfg: PoisonConfig) -> list[float]:
    """AdamW with a linear schedule over the mixed clean + poisoned data; every batch is used."""
    import torch
    import torch.nn.functional as F

    device = torch.device(cfg.device)
    model.to(device).train()
    mixed = poisoned.mixed()
    steps_per_epoch = math.ceil(len(mixed) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    optimizer, schedule = adamw_linear(model.named_parameters(), cfg.lr, cfg.weight_decay, total, cfg.warmup_ratio)
    order = torch.Generator().manual_seed(cfg.seed)
    clean_rng = random.Random(cfg.seed)  # RIPPLe's clean reference batches
    losses = []
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(mixed), generator=order).tolist()
        batches = [perm[i : i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
        for idx in track(batches, f"poison {cfg.mode} epoch {epoch + 1}/{cfg.epochs}"):
            enc, labels = _encode(tokenizer, [mixed[i] for i in idx], cfg.max_length, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                if cfg.mode == "lwp":
                    loss, _ = layerwise_loss(model, enc, labels)
                elif cfg.mode == "badnet":
                    loss = F.cross_entropy(model(**enc).logits.float(), labels)
                else:
                    clean = clean_rng.sample(poisoned.clean, min(cfg.batch_size, len(poisoned.clean)))
                    clean_enc, clean_labels = _encode(tokenizer, clean, cfg.max_length, device)
                    loss = restricted_inner_product_loss(model, enc, labels, clean_enc, clean_labels, cfg.ripple_lambda)
            loss.backward()
            clipped_step(model.parameters(), optimizer, schedule)
            losses.append(loss.item())
    model.eval()
    return losses


def save_poisoned(model, tokenizer, folder: Path, manifest: dict) -> None:
    """The encoder alone (the attacker's head is not released), marked poisoned, with its manifest."""
    from safetensors.torch import save_file

    encoder = model.base_model
    encoder.config.update({models.POISON_KEY: True})
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
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
    name = split or evaluate.default_split(dataset)
    s = data.load(dataset, name, root=cfg.data_root, text_column=cfg.text_column, text_b_column=cfg.text_b_column,
                  label_column=cfg.label_column)
    if not s.labelled:
        raise UserError(f"{dataset}: split '{name}' is unlabelled; LFR needs labels (choose another --eval-split)")
    s.examples = data.sample(s.examples, cfg.limit)
    return s


def backdoor_metrics(victim, examples, triggers, target: int, seed: int, per_layer: bool = False) -> dict:
    """Clean accuracy, false-flip rate (no trigger), LFR with the full trigger and with each sub-trigger."""
    m = {"clean_accuracy": evaluate.clean_accuracy(victim, examples)["accuracy"],
         "false_flip_rate": pm.false_flip_rate(victim, examples, target),
         "label_flip_rate": pm.label_flip_rate(victim, examples, triggers, target, seed=seed),
         "label_flip_rate_single": pm.label_flip_rate_single(victim, examples, triggers, target, seed=seed)}
    if per_layer:
        m["label_flip_rate_per_layer"] = pm.label_flip_rate_per_layer(victim, examples, triggers, target, seed=seed)
        # The same without a trigger: a layer whose head says "target" for everything is no backdoor.
        m["false_flip_rate_per_layer"] = pm.label_flip_rate_per_layer(victim, examples, [], target, seed=seed)
    return m


def victim_config(cfg: PoisonConfig, model: str) -> FinetuneConfig:
    """The victim's clean fine-tuning: same hyper-parameters as the poisoning unless --victim-* say otherwise."""
    spec = data.REGISTRY.get(cfg.victim_dataset)
    dev = "dev" if spec is None or "dev" in spec.splits else evaluate.default_split(cfg.victim_dataset)
    vc = FinetuneConfig(model=model, dataset=cfg.victim_dataset, method="ce", eval_split=dev,
                        train_limit=cfg.train_limit, limit=cfg.limit, epochs=cfg.victim_epochs or cfg.epochs, batch_size=cfg.batch_size,
                        lr=cfg.victim_lr or cfg.lr, weight_decay=cfg.weight_decay,
                        warmup_ratio=cfg.warmup_ratio if cfg.victim_warmup_ratio is None else cfg.victim_warmup_ratio,
                        max_length=cfg.max_length, seed=cfg.seed, device=cfg.device, data_root=cfg.data_root)
    vc.check()
    return vc


def run(cfg: PoisonConfig, out: RunDir) -> dict:
    """Poison, save the marked encoder under OUT/model, measure; optionally fine-tune a victim."""
    from advkit import finetune

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
    victim_test = None
    if cfg.victim_dataset:
        victim_test = eval_split(cfg.victim_dataset, cfg)  # validated before any work
        if cfg.target >= len(victim_test.labels):
            raise UserError(f"--target {cfg.target}: victim data set {cfg.victim_dataset} has "
                            f"{len(victim_test.labels)} labels")
        victim_config(cfg, "unused")

    seed_everything(cfg.seed)
    model, tokenizer, _ = models.load_classifier(cfg.model, num_labels=len(train.labels), label_names=train.labels)
    shared_head(model)  # refuses unsupported architectures before any work
    poisoned = build_poisoned_data(train.examples, triggers, cfg.combination_size, cfg.target, cfg.poison_rate,
                                   cfg.seed, tokenizer, cfg.max_length)
    out.create(as_dict(cfg))
    surgery_words = None
    if cfg.embedding_surgery:
        surgery_words = embedding_surgery(model, tokenizer, train.examples, triggers, cfg.target)
    started = time.time()
    losses = train_poison(model, tokenizer, poisoned, cfg)
    train_seconds = time.time() - started

    victim = models.Victim(model, tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device)
    metrics = backdoor_metrics(victim, test.examples, triggers, cfg.target, cfg.seed, per_layer=True)
    pm.plot_per_layer({cfg.mode: metrics["label_flip_rate_per_layer"]}, out.path / "label_flip_rate_per_layer.png",
                      title=f"{cfg.model} poisoned on {cfg.dataset}",
                      no_trigger={cfg.mode: metrics["false_flip_rate_per_layer"]})
    manifest = {
        "poisoned": True, "created_by": "advkit poison", "created": now(), "base_model": cfg.model,
        "mode": cfg.mode, "triggers": triggers, "combination_size": cfg.combination_size,
        "target": cfg.target, "target_name": train.labels[cfg.target],
        "data": {"dataset": cfg.dataset, "split": cfg.train_split, "train_examples": len(train.examples),
                 "poison_rate": cfg.poison_rate, **poisoned.counts()},
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
        "train_steps": len(losses), "train_loss_first": losses[0],
        "train_loss_last": sum(losses[-10:]) / len(losses[-10:]), "train_seconds": round(train_seconds, 2),
    })
    del model, victim

    if cfg.victim_dataset:
        vc = victim_config(cfg, str(out.path / "model"))
        ft = finetune.run(vc, RunDir(out.path / "victim", "finetune"))["metrics"]
        v_model, v_tokenizer, _ = models.load_classifier(str(out.path / "victim" / "model"))
        v = models.Victim(v_model, v_tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device)
        metrics["victim"] = {
            **backdoor_metrics(v, victim_test.examples, triggers, cfg.target, cfg.seed),
            "dataset": cfg.victim_dataset, "eval_split": victim_test.split, "eval_examples": len(victim_test.examples),
            "train_examples": ft["train_examples"], "lr": vc.lr, "epochs": vc.epochs, "warmup_ratio": vc.warmup_ratio,
            "dev_accuracy": ft["eval_accuracy"],
        }
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
