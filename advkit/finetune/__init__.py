"""Fine-tuning: plain cross-entropy (the baseline every method needs); KNN-BERT builds on it."""

from advkit.finetune.train import run

__all__ = ["run"]
