"""KNN-BERT's combined predictor: p = lambda_inf * p_knn + (1 - lambda_inf) * softmax(h(x)).

Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*, arXiv 2110.02523 (2021).
Under attack the attacked model is this combined predictor, not the linear head alone
(`advkit.predictor.load_predictor` gives it for a knn run directory).

A knn run directory holds: model/ (the HF classifier, safetensors), projection.safetensors (g_q),
datastore.safetensors (keys and labels) and knn.json (pooling, k, weighting, lambda_inf).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from advkit import hf, models
from advkit.errors import UserError
from advkit.knn_bert.datastore import Datastore
from advkit.victim import PooledVictim, head_forward

KNN_FILE = "knn.json"
LAMBDA_GRID = tuple(round(0.1 * i, 1) for i in range(11))


class ProjectionHead(nn.Module):
    """g: dense -> ReLU -> dense, the two-layer MLP of the contrastive space (MoCo v2, SimCLR)."""

    def __init__(self, hidden_size: int, projection_dim: int = 128):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, projection_dim)

    def forward(self, x):
        return self.out(F.relu(self.dense(x)))


def combine(p_cls, p_knn, lambda_inf: float):
    return lambda_inf * p_knn + (1 - lambda_inf) * p_cls


def select_lambda_inf(p_cls, p_knn, labels, grid=LAMBDA_GRID, prefer: float = 0.1):
    """The lambda_inf of `grid` with the best accuracy on these (selection) examples; ties go to
    the value nearest `prefer` (the reference's 0.1). Returns (lambda_inf, {lambda: accuracy})."""
    import numpy as np

    labels = np.asarray(labels)
    scores = {lam: float((combine(p_cls, p_knn, lam).argmax(1) == labels).mean()) for lam in grid}
    best = max(grid, key=lambda lam: (scores[lam], -abs(lam - prefer)))
    return best, scores


class KnnPredictor(PooledVictim):
    """A Victim whose probabilities mix the linear head with a KNN vote over the datastore.

    `pooling` feeds the projection (the KNN space); the head reads the model's own `head_pooling`
    (the same in runs of this version; "pooler" in runs saved before it). projection None: the KNN
    space is the pooled vector itself, L2-normalised (the un-fine-tuned control, `--epochs 0`)."""

    def __init__(self, model, tokenizer, projection, datastore, pooling: str = "pooler", knn_k: int = 10,
                 knn_weighting: str = "uniform", knn_tau: float = 0.07, lambda_inf: float = 0.1,
                 max_length: int = hf.MAX_LENGTH, batch_size: int = 32, device: str = "cpu", precision: str = "fp32"):
        super().__init__(model, tokenizer, max_length=max_length, batch_size=batch_size, device=device,
                         precision=precision)
        self.projection = projection.to(device).eval() if projection is not None else None
        self.datastore = datastore
        self.pooling = pooling
        self.knn_k, self.knn_weighting, self.knn_tau = knn_k, knn_weighting, knn_tau
        self.lambda_inf = lambda_inf

    def represent(self, texts, texts_b=None):
        """(p_cls, q) as numpy arrays: head probabilities and normalised projections g_q(f_q(x))."""
        import numpy as np

        p_cls, qs = [], []
        with self.inference():
            for i in range(0, len(texts), self.batch_size):
                batch_b = texts_b[i : i + self.batch_size] if texts_b is not None else None
                enc = self._encode(texts[i : i + self.batch_size], batch_b)
                if self.head_pooling == self.pooling:  # one representation: one pass, one pooled vector
                    logits, rep = head_forward(self.model, enc, self.pooling)
                else:  # a run saved before the head read the pooled vector
                    out = self.model(**enc, output_hidden_states=True)
                    logits = out.logits
                    rep = hf.pool(out.hidden_states[-1], enc["attention_mask"], self.pooling, self.model.base_model)
                if self.projection is not None:
                    rep = self.projection(rep)
                qs.append(F.normalize(rep.float(), dim=1).cpu())
                p_cls.append(torch.softmax(logits.float(), dim=-1).cpu())
        self.queries += len(texts)
        if not qs:
            return (np.zeros((0, self.num_labels), dtype="float32"), np.zeros((0, self.space_dim), dtype="float32"))
        return torch.cat(p_cls).numpy(), torch.cat(qs).numpy()

    @property
    def space_dim(self) -> int:
        """Width of the KNN space: the projection's output, or the hidden size without projection."""
        return self.projection.out.out_features if self.projection is not None else self.model.config.hidden_size

    def parts(self, texts, texts_b=None):
        """(p_cls, p_knn, q) as numpy arrays: head probabilities, KNN vote, normalised projections."""
        p_cls, q = self.represent(texts, texts_b)
        if len(q) == 0:
            return p_cls, p_cls.copy(), q
        p_knn = self.datastore.predict(torch.from_numpy(q), self.knn_k, self.knn_weighting, self.knn_tau)
        return p_cls, p_knn.numpy(), q

    def predict_proba(self, texts, texts_b=None):
        p_cls, p_knn, _ = self.parts(texts, texts_b)
        return combine(p_cls, p_knn, self.lambda_inf)

    def adaptive_proba(self, texts, texts_b=None):
        """(the shipped prediction, its smooth twin) from one forward pass: the same mix with the head,
        the vote replaced by `Datastore.class_proximity` (k = knn_k, tau = knn_tau). The adaptive attack
        ranks and accepts swaps by the second and succeeds only when the first changes its mind."""
        p_cls, p_knn, q = self.parts(texts, texts_b)
        near = self.datastore.class_proximity(torch.from_numpy(q), self.knn_k, self.knn_tau).numpy() if len(q) \
            else p_knn
        return combine(p_cls, p_knn, self.lambda_inf), combine(p_cls, near, self.lambda_inf)

    def save(self, run_dir: Path) -> None:
        """projection.safetensors, datastore.safetensors and knn.json beside model/ (saved apart)."""
        from safetensors.torch import save_file

        from advkit.results import atomic_write

        run_dir = Path(run_dir)
        if self.projection is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.projection.state_dict().items()}
            save_file(state, str(run_dir / "projection.safetensors.tmp"))
            (run_dir / "projection.safetensors.tmp").replace(run_dir / "projection.safetensors")
        self.datastore.save(run_dir / "datastore.safetensors")
        settings = {"pooling": self.pooling, "head_pooling": self.head_pooling,
                    "projection": self.projection is not None, "hidden_size": self.model.config.hidden_size,
                    "projection_dim": self.space_dim, "knn_k": self.knn_k,
                    "knn_weighting": self.knn_weighting, "knn_tau": self.knn_tau, "lambda_inf": self.lambda_inf,
                    "datastore_size": len(self.datastore)}
        atomic_write(run_dir / KNN_FILE, json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir, max_length: int = hf.MAX_LENGTH, batch_size: int = 32, device: str = "cpu",
             precision: str = "fp32") -> "KnnPredictor":
        from safetensors.torch import load_file

        run_dir = Path(run_dir)
        try:
            settings = json.loads((run_dir / KNN_FILE).read_text(encoding="utf-8"))
            projection = None
            if settings.get("projection", True):  # runs saved before the control always had one
                projection = ProjectionHead(settings["hidden_size"], settings["projection_dim"])
                projection.load_state_dict(load_file(str(run_dir / "projection.safetensors")))
            datastore = Datastore.load(run_dir / "datastore.safetensors")
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise UserError(f"{run_dir}: incomplete knn run ({str(e).splitlines()[0]})") from None
        model, tokenizer, _ = models.load_classifier(str(run_dir))
        return cls(model, tokenizer, projection, datastore, pooling=settings["pooling"], knn_k=settings["knn_k"],
                   knn_weighting=settings["knn_weighting"], knn_tau=settings["knn_tau"],
                   lambda_inf=settings["lambda_inf"], max_length=max_length, batch_size=batch_size, device=device,
                   precision=precision)
