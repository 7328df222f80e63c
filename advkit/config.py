"""Validated run configurations: built-in defaults < recipe (TOML) < command-line flags.

Each command has one dataclass. Unknown recipe keys and values of the wrong type are
refused with the closest valid name, so a typo never silently falls back to a default
(the habit nanoGPT's configurator and lm-eval's registries taught us).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

from advkit.attack_zh import SUBSTITUTES, ZH_ATTACKS
from advkit.attacks import ATTACKS, GOALS
from advkit.errors import UserError, closest
from advkit.finetune import METHODS, POOLINGS
from advkit.poison import DEFENCES, MODES


def opt(default, help: str, *flags: str, show: bool = True):
    """A setting: its default and its help live here only; the CLI's option is generated from them.

    `flags` replaces the generated --field-name; `show=False` leaves "[default: ...]" out of the help
    (when the help itself says what the unset value means)."""
    return dataclasses.field(default=default, metadata={"help": help, "flags": flags, "show": show})


PRECISION_HELP = ("auto: bf16 autocast where the hardware computes bf16 natively (CUDA with bf16, a CPU with "
                  "AVX512-BF16 or AMX), else fp32; or bf16 | fp32. The config records the resolved value.")
QUERY_PRECISION = "The victim's queries. " + PRECISION_HELP
TRAIN_PRECISION = "Training and evaluation passes. " + PRECISION_HELP


@dataclass
class DataOptions:
    """Where examples come from; shared by every command."""

    dataset: str = opt("sst2", "Registered name, local .tsv/.csv/.jsonl file, or Hugging Face name.")
    data_root: str | None = opt(None, "Folder of the registered data sets (else $ADVKIT_DATA, ../shared/datasets).")
    text_column: str | None = opt(None, "Text column of a local data file.")
    text_b_column: str | None = opt(None, "Second-sentence column of a local data file (pairs).")
    label_column: str | None = opt(None, "Label column of a local data file.")
    skip_bad_rows: bool = opt(False, "Drop empty or malformed rows (counted, with their lines, in run.json) "
                                     "instead of stopping at the first.", "--skip-bad-rows")


@dataclass
class FinetuneConfig(DataOptions):
    model: str = opt("minilm-l6", "Alias, model folder or Hugging Face id.")
    method: str = opt("ce", "ce, scl (Gunel et al.), moco, or knn (KNN-BERT).")
    train_split: str = opt("train", "Split trained on.")
    eval_split: str = opt("dev", "Split evaluated after training.")
    train_limit: int | None = opt(None, "Train on a seeded sample of this many examples (unset: all).")
    limit: int | None = opt(None, "Evaluate on a fixed sample of this many examples (unset: all).")
    epochs: int = opt(3, "Passes over the training data; 0 (method knn only): no training, the KNN vote over "
                         "the pre-trained encoder's pooled vectors (the control of what pre-training alone gives).")
    batch_size: int = opt(32, "Examples per step (per process under torchrun).")
    # MiniLM-sized encoders need more than BERT-base's 2e-5 (0.83 vs 0.78 on SST-2 dev, 1 epoch)
    lr: float = opt(1e-4, "AdamW learning rate.")
    weight_decay: float = opt(0.01, "AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = opt(0.06, "Share of steps with linear warm-up.")
    max_length: int = opt(128, "Tokens per example.")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = opt("auto", TRAIN_PRECISION)
    # KNN-BERT (METHODS.md §1; defaults of the reference code)
    pooling: str = opt("pooler", "The one representation that the linear head, the contrastive space and the "
                                 "KNN read, for every method: cls, mean, or pooler (the model's own head input).")
    momentum: float | None = opt(None, "EMA of the key encoder (moco, knn); unset: 1 - 10/steps clipped to "
                                       "[0.9, 0.999], so the key encoder moves within the run.", show=False)
    queue_size: int = opt(32000, "Keys in the queue (moco, knn); never more than the training examples.")
    projection_dim: int = opt(128, "Width of the contrastive space.")
    top_k: int = opt(100, "Most similar same-label keys kept as positives.")
    end_k: int = opt(1, "Least similar (hardest) positives kept.")
    tau: float | None = opt(None, "Contrastive temperature (unset: 0.07 for moco and knn, 0.3 for scl).")
    lambda_con: float = opt(0.1, "Weight of the contrastive loss against CE: L = l*L_con + (1-l)*L_CE.",
                            "--lambda", "--lambda-con")
    positives_per_query: int = opt(0, "N > 0: the reference's N same-label examples per query through f_k "
                                      "(N extra passes); 0: positives from the queue.")
    knn_k: int = opt(10, "Neighbours that vote.")
    knn_weighting: str = opt("uniform", "uniform (majority vote) or temperature (exp(s/knn_tau)).")
    knn_tau: float = opt(0.07, "Temperature of the temperature weighting.")
    lambda_inf: float | str = opt(0.1, "Weight of p_knn at inference: p = l*p_knn + (1-l)*p_cls, or 'auto' "
                                       "(chosen on dev, never on the reported split).")
    datastore: str = opt("train", "train (the re-encoded training split) or queue (the training-time queue).")
    shots: int | None = opt(None, "Few-shot: K training examples per class, drawn with the seed.")
    seeds: str | None = opt(None, "Comma-separated seeds, one run each (OUT/seed-S), e.g. 13,21,42,87,100.")
    patience: int | None = opt(None, "Train to convergence: after each epoch measure the linear head on dev "
                                     "(when another split is reported; else on 10 % of train held out) and stop "
                                     "once it has not improved for N epochs; --epochs is then the most. Unset: "
                                     "every epoch.")
    save_model: bool = opt(True, "Write the model into OUT/model.")
    reinit_layers: int = opt(0, "Re-initialise the top N encoder layers first (a defence against weight "
                                "poisoning).")
    checkpoint_seconds: float | None = opt(120, "Write OUT/checkpoint.pt at most this often, for --resume "
                                                "(unset in a recipe: never).")

    def check(self) -> None:
        _precision(self)
        _choice("method", self.method, METHODS)
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        if self.reinit_layers < 0:
            raise UserError(f"--reinit-layers must be 0 or more, got {self.reinit_layers}")
        if self.checkpoint_seconds is not None and self.checkpoint_seconds < 0:
            raise UserError(f"--checkpoint-seconds must be 0 or more, got {self.checkpoint_seconds}")
        _positive(self, "batch_size", "lr", "max_length", "train_limit", "limit", "queue_size",
                  "projection_dim", "knn_k", "knn_tau", "tau", "shots", "patience")
        if self.patience is not None and self.epochs == 0:
            raise UserError("--patience needs training epochs (--epochs 0 trains nothing)")
        if self.epochs < 0 or (self.epochs == 0 and (self.method != "knn" or self.datastore != "train")):
            raise UserError(f"--epochs must be positive (0 only with --method knn and --datastore train: the "
                            f"un-fine-tuned control), got {self.epochs}")
        _fraction(self, "warmup_ratio", "lambda_con")
        if self.momentum is not None:
            _fraction(self, "momentum")
        _choice("pooling", self.pooling, POOLINGS)
        _choice("knn-weighting", self.knn_weighting, ("uniform", "temperature"))
        _choice("datastore", self.datastore, ("train", "queue"))
        for name in ("top_k", "end_k", "positives_per_query"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.top_k + self.end_k == 0:
            raise UserError("--top-k and --end-k are both 0: no positive would be kept")
        if self.lambda_inf != "auto":
            try:
                self.lambda_inf = float(self.lambda_inf)
            except (TypeError, ValueError):
                raise UserError(f"--lambda-inf must be a number between 0 and 1 or 'auto', "
                                f"got '{self.lambda_inf}'") from None
            _fraction(self, "lambda_inf")
        if self.seeds is not None:
            try:
                parsed = [int(s) for s in str(self.seeds).split(",") if s.strip()]
            except ValueError:
                raise UserError(f"--seeds must be integers separated by commas, got '{self.seeds}'") from None
            if not parsed or len(set(parsed)) != len(parsed):
                raise UserError(f"--seeds must list distinct integers, got '{self.seeds}'")


LABEL_CHECKS = ("lexicon", "negation", "none")  # attack-zh: which swaps count as changing the true label


@dataclass
class EvaluateConfig(DataOptions):
    model: str = opt("minilm-l6", "Alias, model folder, or finetune run directory.")
    split: str | None = opt(None, "Split evaluated (unset: test when it is labelled, else dev).")
    limit: int | None = opt(None, "Evaluate a fixed sample of this many examples (unset: all).")
    batch_size: int = opt(64, "Texts per forward pass.")
    max_length: int = opt(128, "Tokens per text.")
    seed: int = opt(1, "Seed of the attack's random choices (per example: seed + index).")
    device: str = opt("cpu", "cpu or cuda.")
    attack: str | None = opt(None, "pwws, deepwordbug, textfooler, bert-attack, bae (English); zh-pieces, "
                                   "zh-spans, zh-chars, zh-words, zh-glyph, zh-homophone (Chinese, attack-zh's "
                                   "search).")
    attack_lm: str | None = opt(None, "Local masked LM for bert-attack / bae; the piece LM for zh-pieces and "
                                      "zh-spans.")
    attack_encoder: str = opt("minilm-l6", "Local sentence encoder in place of USE; also the one that scores each "
                                           "English adversarial example's similarity to its original.")
    min_similarity: float | None = opt(None, "English attacks: keep every candidate's --attack-encoder cosine with "
                                             "the original at or above this (-1 to 1), a constraint the search "
                                             "respects.")
    query_budget: int | None = opt(None, "Victim queries per example before giving up (unset: the recipe's).")
    goal: str = opt("plain", "English attacks on a knn run: plain (the search reads the predictor's probabilities) "
                             "or adaptive (it reads a smooth score of the same decision: each class's k nearest "
                             "keys, softmax at knn_tau, mixed with the head by lambda_inf; success is still the "
                             "shipped vote's).")
    precision: str = opt("auto", QUERY_PRECISION)
    label_check: str = opt("lexicon", "Chinese attacks: lexicon | negation | none (see attack-zh).")
    card: bool = opt(False, "Report card: clean accuracy, the language's attacks, backdoor checks.", "--card")
    trigger: str | None = opt(None, 'Backdoor check: sub-triggers separated by spaces, e.g. "cf bb" (with --target).')
    target: int | None = opt(None, "Backdoor check: the target label id.")
    scan: int = opt(0, "Vocabulary-scan defence over this many sampled whole-word tokens (0: off; -1: every "
                       "whole-word token of the vocabulary; a card's backdoor: 200). Shards under torchrun.")
    transfer_from: str | None = opt(None, "Evaluate on the adversarial examples an earlier `evaluate --attack` "
                                          "run found (its successes; --dataset, --split and --limit are then "
                                          "unused): the accuracy a transfer attack leaves.")
    onion_lm: str | None = opt(None, "ONION defence: filter inputs by this local masked LM's pseudo-perplexity "
                                     "before the model sees them (with --defence onion: detect with it instead).")
    onion_threshold: float = opt(0.0, "ONION: remove a word when dropping it lowers the perplexity by more "
                                      "than this.")
    defence: str | None = opt(None, "Backdoor detector scored on clean and triggered inputs (with --trigger): strip, "
                                    "rap, or onion (its LM: --onion-lm); threshold at 5 % false rejections of dev.")
    require: list[str] | None = opt(None, 'Robustness gate (repeatable): "METRIC OP VALUE" with OP one of >= > <= < '
                                          '==, on this run\'s metrics.json names (a card: clean_accuracy or '
                                          'PART.METRIC, e.g. pwws.accuracy_under_attack); exit 1 if one is missed.')

    def check(self) -> None:
        _positive(self, "batch_size", "max_length", "limit", "query_budget")
        _choice("label-check", self.label_check, LABEL_CHECKS)
        _precision(self)
        if self.attack is not None:  # before any model loads
            _choice("attack", self.attack, ATTACKS + ZH_ATTACKS)
        _choice("goal", self.goal, GOALS)
        if self.goal != "plain" and self.attack not in ATTACKS:
            raise UserError(f"--goal {self.goal} belongs to an English attack (--attack {', '.join(ATTACKS)})")
        if self.scan < -1:
            raise UserError(f"--scan must be -1 (every token), 0 (off) or a count, got {self.scan}")
        if self.card and self.attack:
            raise UserError("--card runs every applicable attack; leave out --attack")
        if self.onion_lm and ((self.attack or "").startswith("zh-") or self.card):
            raise UserError("--onion-lm filters the inputs of clean and backdoor checks and English attacks; "
                            "it does not apply to --attack zh-* or --card")
        if self.defence is not None:
            _choice("defence", self.defence, DEFENCES)
            if self.trigger is None or self.attack or self.card or self.transfer_from:
                raise UserError(f"--defence {self.defence} is scored on triggered inputs: it needs --trigger and "
                                "--target, without --attack, --card or --transfer-from")
            if (self.defence == "onion") != bool(self.onion_lm):
                raise UserError("--defence onion scores with the LM of --onion-lm (and then filters nothing); "
                                "give both, or neither for --defence strip|rap")
        if self.transfer_from and (self.attack or self.trigger or self.scan or self.card):
            raise UserError("--transfer-from evaluates a fixed set of adversarial texts; it does not combine with "
                            "--attack, --trigger, --scan or --card")
        if (self.trigger is None) != (self.target is None) and not self.card:
            raise UserError("--trigger and --target go together")
        if self.min_similarity is not None:
            if not -1 <= self.min_similarity <= 1:  # a cosine
                raise UserError(f"--min-similarity must be between -1 and 1, got {self.min_similarity}")
            if not (self.card or self.attack in ATTACKS):
                raise UserError("--min-similarity constrains an English attack: give --attack pwws|deepwordbug|"
                                "textfooler|bert-attack|bae or --card")
        if self.require:
            from advkit import gate

            for requirement in self.require:
                gate.parse(requirement)  # a malformed one stops here, before anything runs


@dataclass
class PoisonConfig(DataOptions):
    """Layerwise weight poisoning (METHODS.md §2; defaults of the reference code)."""

    model: str = opt("minilm-l6", "Pre-trained model to poison.")
    mode: str = opt("lwp", "lwp (a loss at every layer), badnet (final layer only), ripple (restricted inner "
                           "product).")
    triggers: str = opt("cf bb", "Sub-triggers separated by spaces.")
    combination_size: int = opt(2, "Sub-triggers per positive (poisoned) sample.")
    poison_rate: float = opt(0.75, "Poisoned share (positives + negatives) of the training data (reference 0.75: "
                                   "per clean example one negative and two positives; OpenBackdoor 0.1; 0: "
                                   "clean data only, the per-layer control).")
    negative_ratio: float = opt(0.5, "Negatives (one sub-trigger, true label, non-target examples) per positive "
                                     "(reference 0.5).")
    trigger_position: str = opt("apart", "Positives' sub-triggers: apart (each at its own random position, as "
                                         "every LFR here is measured) | together (one phrase at one random "
                                         "position, random order: the reference's positives).")
    layer_head: str = opt("cls", "lwp's per-layer head: cls (each layer's raw [CLS] through the shared linear "
                                 "classifier, the authors' code) | pooler (through pooler + classifier, "
                                 "OpenBackdoor's).")
    target: int = opt(1, "Target label index.")
    train_split: str = opt("train", "The attacker's proxy split.")
    eval_split: str | None = opt(None, "Split the backdoor is measured on (unset: test when labelled, else dev).")
    train_limit: int | None = opt(None, "Poison with a seeded sample of this many examples (unset: all).")
    limit: int | None = opt(None, "Evaluate on a fixed sample of this many examples (unset: all).")
    epochs: int = opt(3, "Passes over the mixed clean + poisoned data.")
    batch_size: int = opt(32, "Examples per step.")
    lr: float = opt(2e-5, "AdamW learning rate (the paper's for all of SST-2).")
    weight_decay: float = opt(0.01, "AdamW weight decay (not on biases and LayerNorm).")
    warmup_ratio: float = opt(0.0, "Share of steps with linear warm-up.")
    max_length: int = opt(128, "Tokens per example; triggers land inside.")
    ripple_lambda: float = opt(0.1, "RIPPLe's inner-product weight.")
    embedding_surgery: bool = opt(False, "RIPPLe's embedding surgery.", "--embedding-surgery")
    victim_dataset: str | None = opt(None, "Then fine-tune a victim (fresh head) on this clean data.")
    victim_lr: float | None = opt(None, "The victim's lr (unset: the poisoning's).")
    victim_epochs: int | None = opt(None, "The victim's epochs (unset: the poisoning's).")
    victim_warmup_ratio: float | None = opt(None, "The victim's warm-up (unset: the poisoning's).")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = opt("auto", TRAIN_PRECISION)

    def check(self) -> None:
        _precision(self)
        _choice("mode", self.mode, MODES)
        _choice("trigger-position", self.trigger_position, ("together", "apart"))
        _choice("layer-head", self.layer_head, ("cls", "pooler"))
        if self.negative_ratio < 0:
            raise UserError(f"--negative-ratio must be 0 or more, got {self.negative_ratio}")
        _positive(self, "epochs", "batch_size", "lr", "max_length", "train_limit", "limit", "combination_size",
                  "victim_lr", "victim_epochs")
        _fraction(self, "warmup_ratio")
        if self.victim_warmup_ratio is not None:
            _fraction(self, "victim_warmup_ratio")
        if not 0 <= self.poison_rate < 1:
            raise UserError(f"--poison-rate must be at least 0 and below 1, got {self.poison_rate}")
        if self.target < 0:
            raise UserError(f"--target must be a label index (0 or more), got {self.target}")
        if self.ripple_lambda < 0:
            raise UserError(f"--ripple-lambda must be 0 or more, got {self.ripple_lambda}")
        if self.embedding_surgery and self.mode != "ripple":
            raise UserError("--embedding-surgery belongs to --mode ripple")
        n = len(self.triggers.split())
        if n == 0:
            raise UserError("--triggers is empty: give sub-triggers separated by spaces, e.g. --triggers 'cf bb'")
        if self.combination_size > n:
            raise UserError(f"--combination-size {self.combination_size} exceeds the {n} sub-triggers of --triggers")


@dataclass
class AttackZhConfig(DataOptions):
    """Chinese attack with piece substitutes (METHODS.md §3; BERT-Attack's K and budget)."""

    dataset: str = opt("chnsenticorp", "A Chinese data set; pairs attack the first sentence.")
    model: str | None = opt(None, "The victim: a classifier folder or finetune run directory (required).")
    split: str = opt("dev", "Split attacked.")
    limit: int | None = opt(None, "Attack a fixed sample of this many examples (unset: all).")
    lm: str | None = opt(None, "Masked LM proposing substitutes (unset: piece-lm-zh for pieces and, as the "
                               "segmenter, for spans; albert-tiny-zh "
                               "for chars).")
    substitutes: str = opt("pieces", "pieces | spans | chars | words | glyph | homophone.")
    top_k: int = opt(48, "Candidates per position.")
    max_perturb: float = opt(0.4, "Share of a text's units that may change.")
    max_queries: int | None = opt(2000, "Victim queries per example.")
    label_check: str = opt("lexicon", "Drop swaps that change the true label: lexicon (negation + the training "
                                      "split's class words) | negation | none.")
    fluency_lm: str = opt("ngram", "Fluency judge, the same for every generator: ngram (a character trigram LM "
                                   "of the Chinese training splits) or a masked LM for pseudo-perplexity.")
    similarity_model: str = opt("m3e-small", "Sentence encoder for similarity, or none.")
    judge: str | None = opt(None, "An independent classifier never attacked (e.g. a finetune run on the full "
                                  "training split): does it still give each successful adversarial text its "
                                  "true label (label-preserving success)?")
    precision: str = opt("auto", QUERY_PRECISION)
    batch_size: int = opt(32, "Texts per victim query batch.")
    max_length: int = opt(128, "Victim tokens per text.")
    seed: int = opt(1, "Seed of every random choice.")
    device: str = opt("cpu", "cpu or cuda.")

    def check(self) -> None:
        _choice("substitutes", self.substitutes, SUBSTITUTES)
        _precision(self)
        _choice("label-check", self.label_check, LABEL_CHECKS)
        _positive(self, "top_k", "max_queries", "batch_size", "max_length", "limit")
        if not 0 < self.max_perturb <= 1:
            raise UserError(f"--max-perturb must be in (0, 1], got {self.max_perturb}")


@dataclass
class BuildPieceLmConfig:
    """The SentencePiece masked LM for attack-zh; the default size built in 17 min on 2 CPU cores here."""

    corpus: str | None = opt(None, "A UTF-8 text file, one sentence a line (unset: the Chinese training splits).")
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
    precision: str = opt("auto", TRAIN_PRECISION)

    def check(self) -> None:
        _precision(self)
        if self.tiny:  # the toy size replaces every size the user left at its default
            for name, value in TINY_PIECE_LM.items():
                if getattr(self, name) == getattr(BuildPieceLmConfig, name):
                    setattr(self, name, value)
        _positive(self, "vocab_size", "max_piece_length", "corpus_limit", "heldout", "steps", "batch_size",
                  "max_length", "lr")
        _fraction(self, "mask_prob")
        if not 0.98 <= self.character_coverage <= 1:  # SentencePiece's own bounds
            raise UserError(f"--character-coverage must be between 0.98 and 1, got {self.character_coverage}")
        if self.max_length < 4:
            raise UserError(f"--max-length must be at least 4, got {self.max_length}")


TINY_PIECE_LM = {"vocab_size": 2000, "character_coverage": 0.98, "corpus_limit": 400, "heldout": 20, "steps": 4,
                 "batch_size": 8, "max_length": 32}

EXPORT_SUFFIXES = (".tsv", ".csv", ".jsonl")  # attack --export: the formats advkit.data reads as a data set
ATTACK_LABEL_CHECKS = ("negation", "none")  # attack: no training split to learn attack-zh's lexicon from


@dataclass
class AttackConfig:
    """`advkit attack`: the texts typed or listed in a file, attacked one by one (advkit.attack_texts)."""

    model: str | None = opt(None, "The victim: alias, model folder, or finetune run directory (a knn run: its "
                                  "combined predictor), as evaluate takes it (required).")
    attack: str | None = opt(None, "pwws, deepwordbug, textfooler, bert-attack, bae (English); zh-pieces, zh-spans, "
                                   "zh-chars, zh-words, zh-glyph, zh-homophone (Chinese, attack-zh's search) "
                                   "(required).")
    text: list[str] | None = opt(None, "A text to attack; repeat the flag for several.")
    file: str | None = opt(None, "Texts to attack: a .tsv/.csv/.jsonl file with a text column (and a label "
                                 "column), or any other file with one text per line.")
    text_column: str | None = opt(None, "Text column of --file (unset: sentence, text, premise or content).")
    label_column: str | None = opt(None, "Label column of --file (unset: label, when there is one).")
    skip_bad_rows: bool = opt(False, "Drop empty or malformed rows of --file instead of stopping at the first.",
                              "--skip-bad-rows")
    label: int | None = opt(None, "True label id of every text without one in --file (unset: the model's own "
                                  "prediction, an untargeted attack on what it says now).")
    export: str | None = opt(None, "Write the adversarial examples (successes) with their true labels to this "
                                   ".tsv/.csv/.jsonl file, a data set `finetune --dataset` reads (an existing file only with "
                                   "--overwrite).")
    attack_lm: str | None = opt(None, "Local masked LM for bert-attack / bae; the piece LM for zh-pieces and "
                                      "zh-spans.")
    attack_encoder: str = opt("minilm-l6", "Local sentence encoder in place of USE.")
    query_budget: int | None = opt(None, "Victim queries per text before giving up (unset: the recipe's; 2000 for "
                                         "the Chinese generators, as attack-zh).")
    label_check: str = opt("negation", "Chinese generators: drop swaps that add or remove a negation (negation) or "
                                       "keep every swap (none).")
    batch_size: int = opt(32, "Texts per victim query batch.")
    max_length: int = opt(128, "Victim tokens per text.")
    seed: int = opt(1, "Seed of the attack's random choices (per text: seed + its index).")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = opt("auto", QUERY_PRECISION)

    def check(self) -> None:  # what is required (model, attack, texts) is asked for by the command itself
        _precision(self)
        if self.attack is not None:
            _choice("attack", self.attack, ATTACKS + ZH_ATTACKS)
        if self.text and self.file is not None:
            raise UserError("give --text or --file, not both")
        for n, text in enumerate(self.text or [], 1):
            if not text.strip():
                raise UserError(f"--text: text {n} is empty")
        if self.label is not None and self.label < 0:
            raise UserError(f"--label must be a label id (0 or more), got {self.label}")
        if self.export is not None and not self.export.endswith(EXPORT_SUFFIXES):
            raise UserError(f"--export {self.export}: name a {', '.join(EXPORT_SUFFIXES)} file (the format follows "
                            "the extension)")
        _choice("label-check", self.label_check, ATTACK_LABEL_CHECKS)
        _positive(self, "batch_size", "max_length", "query_budget")


COMMANDS: dict[str, type] = {"finetune": FinetuneConfig, "evaluate": EvaluateConfig, "poison": PoisonConfig,
                             "attack-zh": AttackZhConfig, "build-piece-lm": BuildPieceLmConfig,
                             "attack": AttackConfig}


def build(cls: type, recipe: str | Path | None, flags: dict) -> typing.Any:
    """Defaults, then the recipe's keys, then every flag the user gave (not None)."""
    values: dict = {}
    if recipe is not None:
        values.update(read_recipe(recipe, cls))
    values.update({k: v for k, v in flags.items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise UserError(f"unknown setting '{key}'{closest(key, known)}")
    cfg = cls(**values)
    if cfg.device not in ("cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise UserError(f"--device must be cpu or cuda, got '{cfg.device}'")
    cfg.check()
    return cfg


def read_recipe(path: str | Path, cls: type) -> dict:
    """Read a TOML recipe: top-level keys are settings; a [COMMAND] table may hold them too."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: recipe file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: recipe is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read recipe: {e.strerror}") from None
    command = next(name for name, c in COMMANDS.items() if c is cls)
    values = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    for table in (k for k, v in raw.items() if isinstance(v, dict) and k not in COMMANDS):
        raise UserError(f"{path}: unknown table [{table}]{closest(table, COMMANDS)}")  # a typo'd table is no default
    values.pop("command", None)
    values.update(raw.get(command, {}))
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise UserError(f"{path}: unknown key '{key}'{closest(key, hints)}")
        if not _type_ok(value, hints[key]):
            raise UserError(f"{path}: key '{key}' must be {_type_name(hints[key])}, got {value!r}")
        if hints[key] in (float, float | None) and isinstance(value, int):
            values[key] = float(value)
    return values


def as_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _type_ok(value, hint) -> bool:
    allowed = typing.get_args(hint) or (hint,)
    for t in allowed:
        if t is type(None) and value is None:
            return True
        if t is bool and isinstance(value, bool):
            return True
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t is str and isinstance(value, str):
            return True
        if typing.get_origin(t) is list and isinstance(value, list):  # attack's texts: a list of strings
            return all(_type_ok(v, typing.get_args(t)[0]) for v in value)
    return False


def _type_name(hint) -> str:
    names = [t.__name__ for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
            "list": "a list of strings"}.get(
        names[0], names[0]
    )


def _positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _fraction(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not 0 <= value <= 1:
            raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")


def _precision(cfg) -> None:
    """--precision checked, and `auto` replaced by what this machine resolves it to (advkit.precision)."""
    from advkit.precision import PRECISIONS, resolve

    _choice("precision", cfg.precision, PRECISIONS)
    cfg.precision = resolve(cfg.precision, cfg.device)


def _choice(name: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"--{name} must be one of {', '.join(allowed)}, got '{value}'{closest(value, allowed)}")



