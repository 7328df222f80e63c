"""`advkit finetune`'s settings: KNN-BERT and its baselines (CE, SCL, MoCo)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from advkit.config import (TRAIN_PRECISION, DataOptions, check_precision, choice, fraction, opt, positive,
                           precision_option)
from advkit.errors import UserError
from advkit.hf import MAX_LENGTH
from advkit.finetune import METHODS, POOLINGS


@dataclass
class FinetuneConfig(DataOptions):
    COMMAND: ClassVar[str] = "finetune"

    model: str = opt("minilm-l6", "Alias, model folder or Hugging Face id.")
    method: str = opt("ce", "ce, scl (Gunel et al.), moco, knn (KNN-BERT), or at (A2T-style adversarial training).")
    train_split: str = opt("train", "Split trained on.")
    eval_split: str = opt("dev", "Split evaluated after training.")
    train_limit: int | None = opt(None, "Train on a seeded sample of this many examples (unset: all).")
    limit: int | None = opt(None, "Evaluate on a fixed sample of this many examples (unset: all).")
    epochs: int = opt(3, "Passes over the training data; 0 (method knn only): no training, the KNN vote over "
                         "the pre-trained encoder's pooled vectors (the control of what pre-training alone gives).")
    batch_size: int = opt(32, "Examples per step (per process under torchrun).")
    # MiniLM-sized encoders need more than BERT-base's 2e-5 (0.83 vs 0.78 on SST-2 dev, 1 epoch)
    lr: float = opt(1e-4, "AdamW learning rate.")
    weight_decay: float = opt(0.01, "AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = opt(0.06, "Share of steps with linear warm-up.")
    max_length: int = opt(MAX_LENGTH, "Tokens per example.")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = precision_option(TRAIN_PRECISION)
    # KNN-BERT (METHODS.md §1; defaults of the reference code)
    pooling: str = opt("pooler", "The one representation that the linear head, the contrastive space and the "
                                 "KNN read, for every method: cls, mean, or pooler (the model's own head input).")
    momentum: float | None = opt(None, "EMA of the key encoder (moco, knn); unset: 1 - 10/steps clipped to "
                                       "[0.9, 0.999], so the key encoder moves within the run.", show=False)
    queue_size: int = opt(32000, "Keys in the queue (moco, knn); never more than the training examples.")
    projection_dim: int = opt(128, "Width of the contrastive space.")
    top_k: int = opt(100, "Most similar same-label keys kept as positives.")
    end_k: int = opt(1, "Least similar (hardest) positives kept.")
    tau: float | None = opt(None, "Contrastive temperature (unset: 0.07 for moco and knn, 0.3 for scl).")
    lambda_con: float = opt(0.1, "Weight of the contrastive loss against CE: L = l*L_con + (1-l)*L_CE.",
                            "--lambda", "--lambda-con")
    positives_per_query: int = opt(0, "N > 0: the reference's N same-label examples per query through f_k "
                                      "(N extra passes); 0: positives from the queue.")
    knn_k: int = opt(10, "Neighbours that vote.")
    knn_weighting: str = opt("uniform", "uniform (majority vote) or temperature (exp(s/knn_tau)).")
    knn_tau: float = opt(0.07, "Temperature of the temperature weighting.")
    lambda_inf: float | str = opt(0.1, "Weight of p_knn at inference: p = l*p_knn + (1-l)*p_cls, or 'auto' "
                                       "(chosen on dev, never on the reported split).")
    datastore: str = opt("train", "train (the re-encoded training split) or queue (the training-time queue).")
    # Adversarial training (at; Yoo & Qi 2021, A2T): advkit/finetune/adversarial.py
    adv_ratio: float = opt(0.2, "at: share of each batch attacked; the adversarial examples that flip the model join "
                                "the batch with their true labels.")
    adv_warmup: int = opt(1, "at: clean epochs before adversarial examples are generated.")
    adv_queries: int = opt(50, "at: query budget of the attack, per attacked example.")
    shots: int | None = opt(None, "Few-shot: K training examples per class, drawn with the seed.")
    seeds: str | None = opt(None, "Comma-separated seeds, one run each (OUT/seed-S), e.g. 13,21,42,87,100.")
    patience: int | None = opt(None, "Train to convergence: after each epoch measure the linear head on dev "
                                     "(when another split is reported; else on 10 % of train held out) and stop "
                                     "once it has not improved for N epochs; --epochs is then the most. Unset: "
                                     "every epoch.")
    save_model: bool = opt(True, "Write the model into OUT/model.")
    reinit_layers: int = opt(0, "Re-initialise the top N encoder layers first (a defence against weight "
                                "poisoning).")
    checkpoint_seconds: float | None = opt(120, "Write OUT/checkpoint.pt at most this often, for --resume "
                                                "(unset in a recipe: never).")

    def check(self) -> None:
        check_precision(self)
        choice("method", self.method, METHODS)
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        if self.reinit_layers < 0:
            raise UserError(f"--reinit-layers must be 0 or more, got {self.reinit_layers}")
        if self.checkpoint_seconds is not None and self.checkpoint_seconds < 0:
            raise UserError(f"--checkpoint-seconds must be 0 or more, got {self.checkpoint_seconds}")
        positive(self, "batch_size", "lr", "max_length", "train_limit", "limit", "queue_size",
                  "projection_dim", "knn_k", "knn_tau", "tau", "shots", "patience")
        if self.patience is not None and self.epochs == 0:
            raise UserError("--patience needs training epochs (--epochs 0 trains nothing)")
        if self.epochs < 0 or (self.epochs == 0 and (self.method != "knn" or self.datastore != "train")):
            raise UserError(f"--epochs must be positive (0 only with --method knn and --datastore train: the "
                            f"un-fine-tuned control), got {self.epochs}")
        fraction(self, "warmup_ratio", "lambda_con", "adv_ratio")
        positive(self, "adv_queries")
        if self.adv_warmup < 0:
            raise UserError(f"--adv-warmup must be 0 or more, got {self.adv_warmup}")
        if self.momentum is not None:
            fraction(self, "momentum")
        choice("pooling", self.pooling, POOLINGS)
        choice("knn-weighting", self.knn_weighting, ("uniform", "temperature"))
        choice("datastore", self.datastore, ("train", "queue"))
        for name in ("top_k", "end_k", "positives_per_query"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.top_k + self.end_k == 0:
            raise UserError("--top-k and --end-k are both 0: no positive would be kept")
        if self.lambda_inf != "auto":
            try:
                self.lambda_inf = float(self.lambda_inf)
            except (TypeError, ValueError):
                raise UserError(f"--lambda-inf must be a number between 0 and 1 or 'auto', "
                                f"got '{self.lambda_inf}'") from None
            fraction(self, "lambda_inf")
        if self.seeds is not None:
            try:
                parsed = [int(s) for s in str(self.seeds).split(",") if s.strip()]
            except ValueError:
                raise UserError(f"--seeds must be integers separated by commas, got '{self.seeds}'") from None
            if not parsed or len(set(parsed)) != len(parsed):
                raise UserError(f"--seeds must list distinct integers, got '{self.seeds}'")
