"""Fine-tuning: cross-entropy, SCL, MoCo and KNN-BERT (Li et al. 2021, arXiv 2110.02523).

`advkit.finetune.train.run(cfg, out)` trains; what a fine-tuned run predicts with (KNN + linear
head for a knn run) is `advkit.predictor.load_predictor`. This file holds only the light names
that config reads without importing the method.
"""

METHODS = ("ce", "scl", "moco", "knn")
POOLINGS = ("cls", "mean", "pooler")
