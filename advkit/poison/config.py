"""`advkit poison`'s settings: layerwise weight poisoning, BadNet, RIPPLe and the victim's fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from advkit.config import (TRAIN_PRECISION, DataOptions, check_precision, choice, fraction, opt, positive,
                           precision_option)
from advkit.errors import UserError
from advkit.hf import MAX_LENGTH
from advkit.poison import MODES


@dataclass
class PoisonConfig(DataOptions):
    """Layerwise weight poisoning (METHODS.md §2; defaults of the reference code)."""

    COMMAND: ClassVar[str] = "poison"


    model: str = opt("minilm-l6", "Pre-trained model to poison.")
    mode: str = opt("lwp", "lwp (a loss at every layer), badnet (final layer only), ripple (restricted inner "
                           "product).")
    triggers: str = opt("cf bb", "Sub-triggers separated by spaces.")
    combination_size: int = opt(2, "Sub-triggers per positive (poisoned) sample.")
    poison_rate: float = opt(0.75, "Poisoned share (positives + negatives) of the training data (reference 0.75: "
                                   "per clean example one negative and two positives; OpenBackdoor 0.1; 0: "
                                   "clean data only, the per-layer control).")
    negative_ratio: float = opt(0.5, "Negatives (one sub-trigger, true label, non-target examples) per positive "
                                     "(reference 0.5).")
    trigger_position: str = opt("apart", "Positives' sub-triggers: apart (each at its own random position, as "
                                         "every LFR here is measured) | together (one phrase at one random "
                                         "position, random order: the reference's positives).")
    layer_head: str = opt("cls", "lwp's per-layer head: cls (each layer's raw [CLS] through the shared linear "
                                 "classifier, the authors' code) | pooler (through pooler + classifier, "
                                 "OpenBackdoor's).")
    target: int = opt(1, "Target label index.")
    train_split: str = opt("train", "The attacker's proxy split.")
    eval_split: str | None = opt(None, "Split the backdoor is measured on (unset: test when labelled, else dev).")
    train_limit: int | None = opt(None, "Poison with a seeded sample of this many examples (unset: all).")
    limit: int | None = opt(None, "Evaluate on a fixed sample of this many examples (unset: all).")
    epochs: int = opt(3, "Passes over the mixed clean + poisoned data.")
    batch_size: int = opt(32, "Examples per step.")
    lr: float = opt(2e-5, "AdamW learning rate (the paper's for all of SST-2).")
    weight_decay: float = opt(0.01, "AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = opt(0.0, "Share of steps with linear warm-up.")
    max_length: int = opt(MAX_LENGTH, "Tokens per example; triggers land inside.")
    ripple_lambda: float = opt(0.1, "RIPPLe's inner-product weight.")
    embedding_surgery: bool = opt(False, "RIPPLe's embedding surgery.", "--embedding-surgery")
    victim_dataset: str | None = opt(None, "Then fine-tune a victim (fresh head) on this clean data.")
    victim_lr: float | None = opt(None, "The victim's lr (unset: the poisoning's).")
    victim_epochs: int | None = opt(None, "The victim's epochs (unset: the poisoning's).")
    victim_warmup_ratio: float | None = opt(None, "The victim's warm-up (unset: the poisoning's).")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = precision_option(TRAIN_PRECISION)

    def check(self) -> None:
        check_precision(self)
        choice("mode", self.mode, MODES)
        choice("trigger-position", self.trigger_position, ("together", "apart"))
        choice("layer-head", self.layer_head, ("cls", "pooler"))
        if self.negative_ratio < 0:
            raise UserError(f"--negative-ratio must be 0 or more, got {self.negative_ratio}")
        positive(self, "epochs", "batch_size", "lr", "max_length", "train_limit", "limit", "combination_size",
                  "victim_lr", "victim_epochs")
        fraction(self, "warmup_ratio")
        if self.victim_warmup_ratio is not None:
            fraction(self, "victim_warmup_ratio")
        if not 0 <= self.poison_rate < 1:
            raise UserError(f"--poison-rate must be at least 0 and below 1, got {self.poison_rate}")
        if self.target < 0:
            raise UserError(f"--target must be a label index (0 or more), got {self.target}")
        if self.ripple_lambda < 0:
            raise UserError(f"--ripple-lambda must be 0 or more, got {self.ripple_lambda}")
        if self.embedding_surgery and self.mode != "ripple":
            raise UserError("--embedding-surgery belongs to --mode ripple")
        n = len(self.triggers.split())
        if n == 0:
            raise UserError("--triggers is empty: give sub-triggers separated by spaces, e.g. --triggers 'cf bb'")
        if self.combination_size > n:
            raise UserError(f"--combination-size {self.combination_size} exceeds the {n} sub-triggers of --triggers")
