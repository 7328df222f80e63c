"""The KNN datastore of KNN-BERT: labelled keys, cosine top-k search, and the vote p_knn.

Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*, arXiv 2110.02523 (2021).
The reference searched the training-time queue (stale keys, duplicates); advkit stores the
training split re-encoded by the final encoder and projection (the queue stays an option).
Search is exact: a matmul in torch for small stores, FAISS's flat inner-product index
(faiss-cpu, Johnson et al. 2019) for large ones; both return the same neighbours.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

FAISS_FROM = 50_000  # stores at least this large are searched with FAISS under backend "auto"


class Datastore:
    """L2-normalised keys (N, d) with integer labels (N,); similarity is the dot product (cosine)."""

    def __init__(self, keys: torch.Tensor, labels: torch.Tensor, num_labels: int, backend: str = "auto"):
        if len(keys) == 0:
            raise ValueError("an empty datastore cannot vote")
        self.keys = F.normalize(keys.detach().float().cpu(), dim=1).contiguous()
        self.labels = labels.detach().long().cpu()
        self.num_labels = num_labels
        self.backend = backend if backend != "auto" else ("faiss" if len(self.keys) >= FAISS_FROM else "torch")
        self._index = None

    def __len__(self) -> int:
        return len(self.keys)

    def search(self, queries: torch.Tensor, k: int, chunk: int = 1024):
        """(similarities, indices), each (B, k), most similar first."""
        queries = F.normalize(queries.detach().float().cpu(), dim=1)
        k = min(k, len(self.keys))
        if self.backend == "faiss":
            if self._index is None:
                import faiss

                self._index = faiss.IndexFlatIP(self.keys.size(1))
                self._index.add(self.keys.numpy())
            sims, idx = self._index.search(queries.contiguous().numpy(), k)
            return torch.from_numpy(sims), torch.from_numpy(idx).long()
        parts = [(q @ self.keys.T).topk(k, dim=1) for q in queries.split(chunk)]
        if not parts:
            return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
        return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])

    def predict(self, queries: torch.Tensor, k: int, weighting: str = "uniform", tau: float = 0.07) -> torch.Tensor:
        """p_knn(c) = sum_{i in top-k, y_i = c} w_i / sum_i w_i, with w_i = 1 (majority vote, the
        reference) or w_i = exp(s_i / tau)."""
        sims, idx = self.search(queries, k)
        weights = torch.ones_like(sims) if weighting == "uniform" else torch.softmax(sims / tau, dim=1)
        votes = torch.zeros(len(sims), self.num_labels)
        votes.scatter_add_(1, self.labels[idx], weights)
        return votes / votes.sum(1, keepdim=True)

    def class_proximity(self, queries: torch.Tensor, k: int, tau: float, chunk: int = 256) -> torch.Tensor:
        """A smooth stand-in for the vote, for an attacker who sees it (the adaptive goal): softmax over
        classes of s_c / tau, s_c the mean similarity of the k keys of class c nearest the query. Unlike
        the uniform vote, which moves in steps of 1/k, it rises as soon as a query moves toward another
        class's keys, long before one of them enters the top k."""
        queries = F.normalize(queries.detach().float().cpu(), dim=1)
        out = []
        for q in queries.split(chunk):
            sims = q @ self.keys.T
            scores = []
            for c in range(self.num_labels):
                own = self.labels == c
                if not own.any():  # a class without keys can never be voted for
                    scores.append(torch.full((len(q),), float("-inf")))
                    continue
                scores.append(sims[:, own].topk(min(k, int(own.sum())), dim=1).values.mean(1))
            out.append(torch.softmax(torch.stack(scores, 1) / tau, dim=1))
        return torch.cat(out) if out else torch.zeros(0, self.num_labels)

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"keys": self.keys, "labels": self.labels}, str(tmp), metadata={"num_labels": str(self.num_labels)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> "Datastore":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            num_labels = int(f.metadata()["num_labels"])
            return cls(f.get_tensor("keys"), f.get_tensor("labels"), num_labels, backend=backend)
