"""`advkit attack-zh`'s and `advkit build-piece-lm`'s settings: the Chinese piece attack and its piece LM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from advkit.attack_zh import SUBSTITUTES
from advkit.config import (QUERY_PRECISION, TRAIN_PRECISION, DataOptions, check_precision, choice, fraction, opt,
                           positive, precision_option)
from advkit.errors import UserError
from advkit.hf import MAX_LENGTH


LABEL_CHECKS = ("lexicon", "negation", "none")  # attack-zh: which swaps count as changing the true label
SENTENCES = ("first", "second")  # attack-zh on pairs: which sentence the attack edits


@dataclass
class AttackZhConfig(DataOptions):
    """Chinese attack with piece substitutes (METHODS.md §3; BERT-Attack's K and budget)."""

    COMMAND: ClassVar[str] = "attack-zh"


    dataset: str = opt("chnsenticorp", "A Chinese data set; on pairs, --attacked says which sentence is edited.")
    model: str | None = opt(None, "The victim: a classifier folder or finetune run directory (required).")
    split: str = opt("dev", "Split attacked.")
    limit: int | None = opt(None, "Attack a fixed sample of this many examples (unset: all).")
    lm: str | None = opt(None, "Masked LM proposing substitutes (unset: piece-lm-zh for pieces and, as the "
                               "segmenter, for spans; albert-tiny-zh "
                               "for chars).")
    attacked: str = opt("first", "On a pair data set (lcqmc): the sentence the attack edits, first or second; the "
                                 "other stays as it is.")
    substitutes: str = opt("pieces", "pieces | spans | chars | words | glyph | homophone.")
    top_k: int = opt(48, "Candidates per position.")
    max_perturb: float = opt(0.4, "Share of a text's units that may change.")
    max_queries: int | None = opt(2000, "Victim queries per example.")
    label_check: str = opt("lexicon", "Drop swaps that change the true label, judged on the unit and on the word "
                                      "around it: lexicon (negation + the training split's class words; a file's "
                                      "train part) | negation | none.")
    fluency_lm: str = opt("ngram", "Fluency judge, the same for every generator: ngram (a character trigram LM "
                                   "of half B of the Chinese training splits; the piece LM learns from half A) or "
                                   "a masked LM for pseudo-perplexity.")
    similarity_model: str = opt("m3e-small", "Sentence encoder for similarity, or none.")
    judge: str | None = opt(None, "An independent classifier never attacked (e.g. a finetune run on the full "
                                  "training split): does it still give each successful adversarial text its "
                                  "true label (label-preserving success)?")
    precision: str = precision_option(QUERY_PRECISION)
    batch_size: int = opt(32, "Texts per victim query batch.")
    max_length: int = opt(MAX_LENGTH, "Victim tokens per text.")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")

    def check(self) -> None:
        choice("substitutes", self.substitutes, SUBSTITUTES)
        check_precision(self)
        choice("label-check", self.label_check, LABEL_CHECKS)
        choice("attacked", self.attacked, SENTENCES)
        positive(self, "top_k", "max_queries", "batch_size", "max_length", "limit")
        if not 0 < self.max_perturb <= 1:
            raise UserError(f"--max-perturb must be in (0, 1], got {self.max_perturb}")


@dataclass
class BuildPieceLmConfig:
    """The SentencePiece masked LM for attack-zh; the default size built in 17 min on 2 CPU cores here."""

    COMMAND: ClassVar[str] = "build-piece-lm"


    corpus: str | None = opt(None, "A UTF-8 text file, one sentence a line (unset: half A of the Chinese training splits; "
                                "half B is held out and judges fluency).")
    data_root: str | None = opt(None, "Folder of the registered data sets (else $ADVKIT_DATA, ../shared/datasets).")
    base: str = opt("albert-tiny-zh", "Character-level masked LM to warm-start from.")
    tiny: bool = opt(False, "A toy size that builds in seconds (tests).", "--tiny")
    vocab_size: int = opt(16000, "Pieces.")
    character_coverage: float = opt(0.9995, "SentencePiece's character coverage.")
    max_piece_length: int = opt(4, "Characters per piece: word-like units.")
    corpus_limit: int | None = opt(None, "Training lines kept, after the held-out lines (unset: all).")
    heldout: int = opt(2000, "Lines kept out of training for the masked-piece accuracy.")
    steps: int = opt(4000, "Masked-LM training steps (batch 64: 16 min on 2 threads here).")
    batch_size: int = opt(64, "Windows per step.")
    max_length: int = opt(64, "Pieces per training window.")
    lr: float = opt(5e-4, "AdamW learning rate.")
    mask_prob: float = opt(0.15, "Share of pieces masked.")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = precision_option(TRAIN_PRECISION)

    def check(self) -> None:
        check_precision(self)
        if self.tiny:  # the toy size replaces every size the user left at its default
            for name, value in TINY_PIECE_LM.items():
                if getattr(self, name) == getattr(BuildPieceLmConfig, name):
                    setattr(self, name, value)
        positive(self, "vocab_size", "max_piece_length", "corpus_limit", "heldout", "steps", "batch_size",
                  "max_length", "lr")
        fraction(self, "mask_prob")
        if not 0.98 <= self.character_coverage <= 1:  # SentencePiece's own bounds
            raise UserError(f"--character-coverage must be between 0.98 and 1, got {self.character_coverage}")
        if self.max_length < 4:
            raise UserError(f"--max-length must be at least 4, got {self.max_length}")


TINY_PIECE_LM = {"vocab_size": 2000, "character_coverage": 0.98, "corpus_limit": 400, "heldout": 20, "steps": 4,
                 "batch_size": 8, "max_length": 32}
