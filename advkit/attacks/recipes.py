"""English word-level attacks, built from TextAttack's parts so that they run offline.

Each recipe is TextAttack's four parts (goal function, constraints, transformation,
search). Departures from the papers, and why:
- PWWS (Ren et al., 2019): as TextAttack's `pwws` recipe; WordNet comes from the project's
  NLTK folder instead of `nltk.download` (no network here).
- DeepWordBug (Gao et al., 2018): as TextAttack's recipe (no downloads needed).
- TextFooler (Jin et al., 2020): the counter-fitted embedding swap is a download, so
  candidates are WordNet synonyms; the Universal Sentence Encoder (a download) is
  replaced by a local sentence encoder (`--attack-encoder`, default minilm-l6, mean
  pooling) at the recipe's threshold; the part-of-speech constraint needs a downloaded
  tagger and is left out.
- BERT-Attack (Li et al., 2020) / BAE (Garg & Ramakrishnan, 2019): need a local masked LM
  (`--attack-lm`); USE replaced as above; BAE's part-of-speech constraint left out.
The model under attack is any object with `predict_proba(texts, texts_b)`: a plain
classifier or the combined KNN predictor. Batches are padded per batch, never to 512.
"""

from __future__ import annotations

from advkit.attacks import ATTACKS, NEEDS_LM
from advkit.errors import UserError


def _textattack():
    """Import TextAttack with the project's NLTK data (stop words, WordNet) and no downloads."""
    from advkit.assets import use_project_nltk

    use_project_nltk()
    import logging

    import textattack

    # It warns that it cannot verify our predictor's class against the goal function; expected.
    logging.getLogger("textattack.shared.utils.install").setLevel(logging.ERROR)
    return textattack


def model_wrapper(predictor):
    """TextAttack's view of a predictor: a list of texts (or (premise, hypothesis) pairs) in, probabilities out."""
    from textattack.models.wrappers import ModelWrapper

    class PredictorWrapper(ModelWrapper):
        def __init__(self, predictor):
            self.model = predictor

        def __call__(self, text_input_list, **kwargs):
            if text_input_list and isinstance(text_input_list[0], tuple):
                return self.model.predict_proba([t[0] for t in text_input_list], [t[1] for t in text_input_list])
            return self.model.predict_proba(list(text_input_list))

    return PredictorWrapper(predictor)


def visible_words(predictor, text) -> int:
    """How many leading words of a TextAttack AttackedText the victim sees within its token window
    (all of them for sentence pairs, or a predictor that cannot tell)."""
    words = text.words
    if len(text.column_labels) > 1 or not hasattr(predictor, "visible_chars"):
        return len(words)
    chars = predictor.visible_chars(text.text)
    if chars >= len(text.text):
        return len(words)
    position, seen = 0, 0
    for word in words:
        position = text.text.find(word, position)
        if position < 0 or position >= chars:
            break
        seen += 1
        position += len(word)
    return seen


def within_window(predictor):
    """A pre-transformation constraint: words past the victim's token window can neither be ranked nor
    perturbed, since no change there can reach its prediction (attack-zh skips them the same way)."""
    from textattack.constraints import PreTransformationConstraint

    class WithinWindow(PreTransformationConstraint):
        def _get_modifiable_indices(self, current_text):
            return set(range(visible_words(predictor, current_text)))

    return WithinWindow()


def sentence_encoder_constraint(encoder_ref: str, threshold: float, metric: str, window_size, compare_against_original,
                                skip_short: bool, device: str = "cpu"):
    """TextAttack's SentenceEncoder constraint backed by a local encoder instead of USE."""
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder

    from advkit.attacks.quality import encoder as shared_encoder

    encoder = shared_encoder(encoder_ref, device)  # the one --min-similarity and the records' scores use

    class LocalSentenceEncoder(SentenceEncoder):
        def encode(self, sentences):
            return encoder.encode(list(sentences))

    return LocalSentenceEncoder(threshold=threshold, metric=metric, window_size=window_size,
                                compare_against_original=compare_against_original,
                                skip_text_shorter_than_window=skip_short)


def adaptive_goal(predictor, batch_size: int, query_budget):
    """An untargeted goal on a KNN predictor that ranks and accepts swaps by the smooth score of its
    decision (`KnnPredictor.adaptive_proba`) and succeeds only when the shipped prediction changes.

    The wrapped model returns [p_shipped | p_smooth] side by side (2C columns), so each text costs one
    query; the shipped half decides success and the reported predictions, the smooth half the score."""
    from textattack.goal_functions import UntargetedClassification
    from textattack.models.wrappers import ModelWrapper

    c = predictor.num_labels

    class Both(ModelWrapper):
        def __init__(self, model):
            self.model = model

        def __call__(self, text_input_list, **kwargs):
            import numpy as np

            if text_input_list and isinstance(text_input_list[0], tuple):
                shipped, smooth = self.model.adaptive_proba([t[0] for t in text_input_list],
                                                            [t[1] for t in text_input_list])
            else:
                shipped, smooth = self.model.adaptive_proba(list(text_input_list))
            return np.concatenate([shipped, smooth], axis=1)

    class AdaptiveKnnGoal(UntargetedClassification):
        def _process_model_outputs(self, inputs, scores):
            import torch

            scores = torch.as_tensor(scores)
            return scores.unsqueeze(0) if scores.ndim == 1 else scores.cpu()

        def _is_goal_complete(self, model_output, _):
            return int(model_output[:c].argmax()) != self.ground_truth_output

        def _get_score(self, model_output, _):
            return 1 - float(model_output[c + self.ground_truth_output])

        def _get_displayed_output(self, raw_output):
            return int(raw_output[:c].argmax())

    return AdaptiveKnnGoal(Both(predictor), model_batch_size=batch_size, query_budget=query_budget or float("inf"))


def build(name: str, predictor, *, lm: str | None = None, encoder: str = "minilm-l6", query_budget: int | None = None,
          batch_size: int = 32, device: str = "cpu", goal: str = "plain", min_similarity: float | None = None):
    """(attack, description) for a recipe name; raises UserError for unknown names or a missing LM.
    goal "adaptive": the search reads a smooth score of a KNN predictor's vote (`adaptive_goal`).
    `min_similarity`: also keep every candidate's `encoder` cosine with the original at or above it."""
    if goal == "adaptive" and not hasattr(predictor, "adaptive_proba"):
        raise UserError("--goal adaptive attacks a knn run's vote; this model has no datastore (use --goal plain)")
    if name not in ATTACKS:
        from advkit.errors import closest

        raise UserError(f"unknown attack '{name}' (attacks: {', '.join(ATTACKS)}){closest(name, ATTACKS)}")
    if name in NEEDS_LM and not lm:
        raise UserError(f"--attack {name} needs a local masked language model: pass --attack-lm PATH")
    from advkit.assets import require_wordnet, use_project_nltk

    use_project_nltk()
    # every file checked before TextAttack's slow import (which needs only the stop words): a copy
    # without index.sense otherwise fails deep inside an attack with a traceback
    if name in ("pwws", "textfooler"):
        require_wordnet(name)
    _textattack()
    from textattack import Attack
    from textattack.constraints.overlap import LevenshteinEditDistance, MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (CompositeTransformation, WordSwapNeighboringCharacterSwap,
                                            WordSwapRandomCharacterDeletion, WordSwapRandomCharacterInsertion,
                                            WordSwapRandomCharacterSubstitution, WordSwapWordNet)

    class OfflineWordNetSwap(WordSwapWordNet):
        # TextAttack's __init__ calls nltk.download("omw-1.4"); English WordNet needs no OMW.
        def __init__(self):
            self.language = "eng"

    goal_function = adaptive_goal(predictor, batch_size, query_budget) if goal == "adaptive" else \
        UntargetedClassification(model_wrapper(predictor), model_batch_size=batch_size,
                                 query_budget=query_budget or float("inf"))
    if name == "pwws":
        parts = (OfflineWordNetSwap(), [RepeatModification(), StopwordModification()],
                 GreedyWordSwapWIR("weighted-saliency"))
        note = "PWWS (Ren et al. 2019): WordNet synonyms, weighted saliency; as TextAttack's recipe"
    elif name == "deepwordbug":
        swap = CompositeTransformation([WordSwapNeighboringCharacterSwap(), WordSwapRandomCharacterSubstitution(),
                                        WordSwapRandomCharacterDeletion(), WordSwapRandomCharacterInsertion()])
        parts = (swap, [RepeatModification(), StopwordModification(), LevenshteinEditDistance(30)],
                 GreedyWordSwapWIR())
        note = "DeepWordBug (Gao et al. 2018): character edits, Levenshtein <= 30; as TextAttack's recipe"
    elif name == "textfooler":
        sim = sentence_encoder_constraint(encoder, 0.840845057, "angular", 15, False, True, device)
        parts = (OfflineWordNetSwap(), [RepeatModification(), StopwordModification(), sim],
                 GreedyWordSwapWIR(wir_method="delete"))
        note = (f"TextFooler (Jin et al. 2020) offline: WordNet synonyms instead of counter-fitted embeddings; "
                f"{encoder} sentence encoder instead of USE (angular >= 0.84, window 15); no POS constraint")
    else:
        from textattack.transformations import WordSwapMaskedLM
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from advkit.models import resolve

        folder = resolve(lm)
        try:
            mlm, tok = AutoModelForMaskedLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as e:
            raise UserError(f"--attack-lm {lm}: cannot load as a masked LM: {str(e).splitlines()[0]}") from None
        if name == "bert-attack":
            swap = WordSwapMaskedLM(method="bert-attack", masked_language_model=mlm, tokenizer=tok, max_candidates=8)
            sim = sentence_encoder_constraint(encoder, 0.2, "cosine", None, True, False, device)
            parts = (swap, [RepeatModification(), StopwordModification(), MaxWordsPerturbed(max_percent=0.4), sim],
                     GreedyWordSwapWIR(wir_method="unk"))
            note = f"BERT-Attack (Li et al. 2020) with masked LM {lm}; {encoder} instead of USE (cosine >= 0.2)"
        else:
            swap = WordSwapMaskedLM(method="bae", masked_language_model=mlm, tokenizer=tok, max_candidates=50,
                                    min_confidence=0.0)
            sim = sentence_encoder_constraint(encoder, 0.936338023, "cosine", 15, True, True, device)
            parts = (swap, [RepeatModification(), StopwordModification(), sim], GreedyWordSwapWIR(wir_method="delete"))
            note = f"BAE-R (Garg & Ramakrishnan 2019) with masked LM {lm}; {encoder} instead of USE; no POS constraint"
    transformation, constraints, search = parts
    if goal == "adaptive":
        note += (f"; adaptive goal: swaps ranked by each class's {predictor.knn_k} nearest keys (softmax at "
                 f"tau {predictor.knn_tau}) mixed with the head by lambda_inf {predictor.lambda_inf}, success by "
                 f"the shipped {predictor.knn_weighting} vote")
    if min_similarity is not None:
        from advkit.attacks.quality import min_similarity as similarity_floor

        constraints = [*constraints, similarity_floor(encoder, min_similarity, device)]
        note += f"; --min-similarity {min_similarity} ({encoder} cosine with the original)"
    return Attack(goal_function, [*constraints, within_window(predictor)], transformation, search), note


def attack_one(attack, example, index: int) -> dict:
    """Attack one example; a record with the original / adversarial pair and its counts."""
    from collections import OrderedDict

    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult

    if example.text_b is not None:
        inputs = OrderedDict([("premise", example.text), ("hypothesis", example.text_b)])
    else:
        inputs = example.text
    result = attack.attack(inputs, example.label)
    status = {SuccessfulAttackResult: "success", FailedAttackResult: "failed",
              SkippedAttackResult: "skipped"}.get(type(result), "failed")
    original, perturbed = result.original_result.attacked_text, result.perturbed_result.attacked_text
    visible = visible_words(attack.goal_function.model.model, original)
    words = len(original.words)
    changed = len(original.all_words_diff(perturbed)) if status == "success" else 0
    record = {
        "index": index, "label": example.label, "status": status,
        "original": original.text, "adversarial": perturbed.text if status == "success" else None,
        "original_prediction": int(result.original_result.output),
        "adversarial_prediction": int(result.perturbed_result.output),
        "queries": int(result.perturbed_result.num_queries) if status != "skipped" else 0,
        "words": words, "words_changed": changed, "words_outside_window": words - visible,
        "perturbed_word_ratio": changed / visible if visible else 0.0,  # of the words the victim sees
    }
    return record
