"""Fine-tuning: cross-entropy, SCL, MoCo, KNN-BERT (Li et al. 2021, arXiv 2110.02523) and A2T-style
adversarial training (Yoo & Qi 2021).

`advkit.finetune.train.run(cfg, out)` trains; what a fine-tuned run predicts with (KNN + linear
head for a knn run) is `advkit.predictor.load_predictor`. This file holds only the light names
that config reads without importing the method.
"""

METHODS = ("ce", "scl", "moco", "knn", "at")
POOLINGS = ("cls", "mean", "pooler")
