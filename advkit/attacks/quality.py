"""How good an English adversarial example is (issue 32), the numbers attack-zh keeps for Chinese ones.

- `similarity`: cosine of the mean-pooled sentence vectors of the original and the adversarial
  text under the attack's sentence encoder (--attack-encoder; default minilm-l6, all-MiniLM-L6-v2,
  the SBERT model TextAttack uses), the encoder that --min-similarity constrains.
- `fluency_ppl_before` / `fluency_ppl_after`: perplexity under `fluency.WordNgram`, a word trigram
  LM of the English training splits: a judge that proposes no word, so it favours neither WordNet
  nor masked-LM substitutes (GPT-2 or BERT perplexity would judge BERT-Attack by its own kind).
- the share of words changed is the record's `perturbed_word_ratio` (recipes.attack_one).

Only successful attacks are scored: a failed or skipped one has no adversarial text.
"""

from __future__ import annotations

from functools import lru_cache

from advkit import fluency
from advkit.victim import SentenceEncoderModel

FIELDS = ("similarity", "fluency_ppl_before", "fluency_ppl_after")


@lru_cache(maxsize=4)
def encoder(ref: str, device: str = "cpu") -> SentenceEncoderModel:
    """One encoder per process for the constraint and the scores (a card runs several attacks)."""
    return SentenceEncoderModel(ref, device=device)


class Scorer:
    """Scores successful records; `describe()` names the judges for metrics.json."""

    def __init__(self, encoder_ref: str = "minilm-l6", device: str = "cpu", data_root: str | None = None):
        self.encoder_ref = encoder_ref
        self.encoder = encoder(encoder_ref, device)
        self.fluency = fluency.english_judge(data_root)  # None: no English training split to count

    def score(self, record: dict) -> dict:
        if record["status"] != "success":
            return {}
        original, adversarial = record["original"], record["adversarial"]
        ppl = self.fluency or (lambda text: None)
        return {"similarity": float(self.encoder.similarity([original], [adversarial])[0]),
                "fluency_ppl_before": ppl(original), "fluency_ppl_after": ppl(adversarial)}

    def describe(self) -> dict:
        judge = self.fluency
        return {"similarity_model": self.encoder_ref,
                "fluency_judge": (f"word trigram LM (interpolated Kneser-Ney, D {judge.d}) of the English training "
                                  f"splits {judge.corpus}: {judge.lines:,} lines, {judge.words:,} words, "
                                  f"{len(judge.vocab_words):,} word types" if judge else
                                  "none: no English training split found (see advkit list datasets)")}


def metric_names() -> dict:
    """The names `evaluate --attack` writes for an English attack, known before it runs (--require is
    checked against them): attack_metrics over a record with every field recipes.attack_one and
    `Scorer` give. tests/test_gate.py holds them to a real run's metrics.json."""
    from advkit.metrics import attack_metrics

    probe = {"status": "success", "queries": 0, "perturbed_word_ratio": 0.0, "words_outside_window": 0,
             **dict.fromkeys(FIELDS, 1.0)}
    return dict.fromkeys(attack_metrics([probe]), 0)


def min_similarity(encoder_ref: str, threshold: float, device: str = "cpu"):
    """--min-similarity as a TextAttack constraint: a candidate whose `similarity` with the original
    text is below `threshold` is dropped before the victim sees it, so every success keeps it.

    TextAttack's SentenceEncoder would compare word windows around the last change (the recipes'
    setting) or the text from its first to its last word; this compares the whole texts, exactly
    what `Scorer.score` records."""
    from textattack.constraints import Constraint

    model = encoder(encoder_ref, device)

    class MinSimilarity(Constraint):
        def __init__(self):
            super().__init__(compare_against_original=True)
            self.threshold = threshold

        def _check_constraint_many(self, transformed_texts, reference_text):
            import numpy as np

            if not transformed_texts:
                return []
            texts = [t.text for t in transformed_texts]
            ref, cand = model.encode([reference_text.text]), model.encode(texts)  # candidates in one batch
            scores = (cand @ ref[0]) / (np.linalg.norm(cand, axis=1) * np.linalg.norm(ref[0])).clip(min=1e-12)
            # Padding in a batch moves a vector by ~1e-7; near the threshold, score alone as the record does
            # (Scorer.score), so that no recorded similarity of a success falls below the threshold.
            near = np.abs(scores - self.threshold) < 1e-4
            for i in np.flatnonzero(near):
                scores[i] = model.similarity([reference_text.text], [texts[i]])[0]
            return [t for t, s in zip(transformed_texts, scores) if s >= self.threshold]

        def _check_constraint(self, transformed_text, reference_text):
            return bool(self._check_constraint_many([transformed_text], reference_text))

        def extra_repr_keys(self):
            return ["threshold", "compare_against_original"]

    return MinSimilarity()
