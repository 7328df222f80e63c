"""Chains of methods: a poisoned model, then the victim's clean fine-tuning on it.

The threat model of Li et al. (EMNLP 2021, METHODS.md §2): the attacker releases poisoned
weights, the victim attaches a fresh head and fine-tunes on clean data with its own settings.
This module sits above the methods, so neither method imports the other.
"""

from __future__ import annotations

from advkit import data, models
from advkit.finetune.config import FinetuneConfig
from advkit.poison.config import PoisonConfig
from advkit.errors import UserError
from advkit.metrics import clean_accuracy
from advkit.results import RunDir
from advkit.victim import Victim


def victim_config(cfg: PoisonConfig, model: str) -> FinetuneConfig:
    """The victim's clean fine-tuning: same hyper-parameters as the poisoning unless --victim-* say otherwise."""
    spec = data.REGISTRY.get(cfg.victim_dataset)
    dev = "dev" if spec is None or "dev" in spec.splits else data.default_split(cfg.victim_dataset)
    vc = FinetuneConfig(model=model, dataset=cfg.victim_dataset, method="ce", eval_split=dev,
                        train_limit=cfg.train_limit, limit=cfg.limit, epochs=cfg.victim_epochs or cfg.epochs,
                        batch_size=cfg.batch_size, lr=cfg.victim_lr or cfg.lr, weight_decay=cfg.weight_decay,
                        warmup_ratio=cfg.warmup_ratio if cfg.victim_warmup_ratio is None else cfg.victim_warmup_ratio,
                        max_length=cfg.max_length, seed=cfg.seed, device=cfg.device, precision=cfg.precision,
                        data_root=cfg.data_root)
    vc.check()
    return vc


def poison(cfg: PoisonConfig, out: RunDir) -> dict:
    """`advkit poison`: poison; with --victim-dataset, then the victim's fine-tuning and its backdoor metrics."""
    from advkit.finetune import train as finetune
    from advkit.poison import metrics as pm
    from advkit.poison import train as poisoning

    if not cfg.victim_dataset:
        return poisoning.run(cfg, out)
    victim_test = poisoning.eval_split(cfg.victim_dataset, cfg)  # validated before any work
    if cfg.target >= len(victim_test.labels):
        raise UserError(f"--target {cfg.target}: victim data set {cfg.victim_dataset} has "
                        f"{len(victim_test.labels)} labels")
    victim_config(cfg, "unused")

    def victim_step(model_folder, triggers) -> dict:
        vc = victim_config(cfg, str(model_folder))
        ft = finetune.run(vc, RunDir(out.path / "victim", "finetune"))["metrics"]
        v_model, v_tokenizer, _ = models.load_classifier(str(out.path / "victim" / "model"))
        v = Victim(v_model, v_tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device,
                          precision=cfg.precision)
        return {
            "clean_accuracy": clean_accuracy(v, victim_test.examples)["accuracy"],
            **pm.backdoor_metrics(v, victim_test.examples, triggers, cfg.target, cfg.seed),
            "dataset": cfg.victim_dataset, "eval_split": victim_test.split, "eval_examples": len(victim_test.examples),
            "train_examples": ft["train_examples"], "lr": vc.lr, "epochs": vc.epochs, "warmup_ratio": vc.warmup_ratio,
            "dev_accuracy": ft["eval_accuracy"],
        }

    return poisoning.run(cfg, out, victim_step=victim_step)
