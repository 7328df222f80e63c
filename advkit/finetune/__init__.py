"""Fine-tuning: cross-entropy, SCL, MoCo and KNN-BERT (Li et al. 2021, arXiv 2110.02523).

`run(cfg, out)` trains; `load_predictor(ref, ...)` returns what a model reference predicts
with: KNN + linear head for a knn run directory, a plain `models.Victim` otherwise.
"""

from advkit.finetune.predictor import KnnPredictor, load_predictor
from advkit.finetune.train import run

__all__ = ["run", "load_predictor", "KnnPredictor"]
