"""Layerwise weight poisoning with combinatorial triggers (Li et al., EMNLP 2021), its baselines and metrics."""

from advkit.poison.train import run

__all__ = ["run"]
