"""What any model reference predicts with: `load_predictor`, which `evaluate`, `advkit attack` and
attack-zh call. A knn run directory gives KNN-BERT's combined predictor (advkit.knn_bert.predictor);
anything else (alias, model folder, ce/scl/moco run directories) the classifier, its linear head on
the pooling it was trained with (advkit.victim)."""

from __future__ import annotations

from pathlib import Path

from advkit import hf, models
from advkit.errors import UserError
from advkit.knn_bert.predictor import KNN_FILE, KnnPredictor
from advkit.victim import PooledVictim, Victim, head_pooling


def load_predictor(ref: str, max_length: int = hf.MAX_LENGTH, batch_size: int = 32, device: str = "cpu",
                   precision: str = "fp32", lambda_inf: float | None = None):
    """The predictor a model reference stands for: KNN + linear head for a knn run directory (mixed by
    `lambda_inf` when given, else by the run's own); for anything else (alias, model folder,
    ce/scl/moco/at run directories) the classifier, its head on the pooling it was trained with (a
    `PooledVictim`; a plain `Victim` for "pooler")."""
    kwargs = dict(max_length=max_length, batch_size=batch_size, device=device, precision=precision)
    if (Path(ref) / KNN_FILE).is_file():
        predictor = KnnPredictor.load(ref, **kwargs)
        if lambda_inf is not None:
            predictor.lambda_inf = lambda_inf
        return predictor
    if lambda_inf is not None:
        raise UserError(f"--lambda-inf weighs a KNN-BERT run's vote; '{ref}' is not a knn run directory")
    model, tokenizer, _ = models.load_classifier(ref)
    return (Victim if head_pooling(model) == "pooler" else PooledVictim)(model, tokenizer, **kwargs)
