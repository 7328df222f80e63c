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

from advkit.errors import UserError, closest


@dataclass
class DataOptions:
    """Where examples come from; shared by every command."""

    dataset: str = "sst2"
    data_root: str | None = None
    text_column: str | None = None
    text_b_column: str | None = None
    label_column: str | None = None


@dataclass
class FinetuneConfig(DataOptions):
    model: str = "minilm-l6"
    method: str = "ce"
    train_split: str = "train"
    eval_split: str = "dev"
    train_limit: int | None = None
    limit: int | None = None
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4  # MiniLM-sized encoders need more than BERT-base's 2e-5 (0.83 vs 0.78 on SST-2 dev, 1 epoch)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 128
    seed: int = 1
    device: str = "cpu"
    # KNN-BERT (METHODS.md §1; defaults of the reference code)
    pooling: str = "pooler"  # representation for the contrastive space and the KNN: cls, mean, pooler
    momentum: float = 0.999  # EMA of the key encoder
    queue_size: int = 32000
    projection_dim: int = 128
    top_k: int = 100  # most similar positives kept per query
    end_k: int = 1  # least similar (hardest) positives kept per query
    tau: float | None = None  # None: 0.07 (moco, knn), 0.3 (scl)
    lambda_con: float = 0.1  # L = lambda_con * L_con + (1 - lambda_con) * L_CE
    positives_per_query: int = 0  # N > 0: the reference's N same-label examples per query through f_k
    knn_k: int = 10
    knn_weighting: str = "uniform"  # uniform (majority vote) or temperature (exp(s / knn_tau))
    knn_tau: float = 0.07
    lambda_inf: float | str = 0.1  # p = lambda_inf * p_knn + (1 - lambda_inf) * p_cls; "auto": chosen on dev
    datastore: str = "train"  # train (re-encoded training split) or queue (the training-time queue)
    shots: int | None = None  # K examples per class, drawn with the seed
    seeds: str | None = None  # "13,21,42,87,100": one run per seed, mean and std
    save_model: bool = True
    reinit_layers: int = 0  # re-initialise the top n encoder layers before training (a poisoning defence)
    checkpoint_seconds: float | None = 120  # a resumable checkpoint at most this often (None: never)

    def check(self) -> None:
        _choice("method", self.method, ("ce", "scl", "moco", "knn"))
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        if self.reinit_layers < 0:
            raise UserError(f"--reinit-layers must be 0 or more, got {self.reinit_layers}")
        if self.checkpoint_seconds is not None and self.checkpoint_seconds < 0:
            raise UserError(f"--checkpoint-seconds must be 0 or more, got {self.checkpoint_seconds}")
        _positive(self, "epochs", "batch_size", "lr", "max_length", "train_limit", "limit", "queue_size",
                  "projection_dim", "knn_k", "knn_tau", "tau", "shots")
        _fraction(self, "warmup_ratio", "momentum", "lambda_con")
        _choice("pooling", self.pooling, ("cls", "mean", "pooler"))
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
    model: str = "minilm-l6"
    split: str | None = None  # None: test when it is labelled, else dev
    limit: int | None = None
    batch_size: int = 64
    max_length: int = 128
    seed: int = 1
    device: str = "cpu"
    attack: str | None = None  # pwws | deepwordbug | textfooler | bert-attack | bae | zh-<attack-zh substitutes>
    attack_lm: str | None = None  # masked LM for bert-attack / bae; the piece or character LM for zh-pieces / zh-chars
    attack_encoder: str = "minilm-l6"  # sentence encoder standing in for USE
    query_budget: int | None = None
    label_check: str = "lexicon"  # zh attacks: lexicon | negation | none (attack-zh's --label-check)
    card: bool = False  # the report card: clean accuracy, the language's attacks, backdoor checks
    trigger: str | None = None  # sub-triggers separated by spaces, e.g. "cf bb"
    target: int | None = None  # the backdoor's target label
    scan: int = 0  # vocabulary-scan defence: this many vocabulary tokens tried one at a time (0: off)
    onion_lm: str | None = None  # ONION defence: inputs filtered by this masked LM's pseudo-perplexity
    onion_threshold: float = 0.0  # ONION: remove words whose removal lowers the perplexity by more than this

    def check(self) -> None:
        _positive(self, "batch_size", "max_length", "limit", "query_budget")
        _choice("label-check", self.label_check, LABEL_CHECKS)
        if self.attack is not None:  # before any model loads
            from advkit.attacks import ATTACKS
            from advkit.evaluate import ZH_ATTACKS

            _choice("attack", self.attack, ATTACKS + ZH_ATTACKS)
        if self.scan < 0:
            raise UserError(f"--scan must be 0 or more, got {self.scan}")
        if self.card and self.attack:
            raise UserError("--card runs every applicable attack; leave out --attack")
        if self.onion_lm and ((self.attack or "").startswith("zh-") or self.card):
            raise UserError("--onion-lm filters the inputs of clean and backdoor checks and English attacks; "
                            "it does not apply to --attack zh-* or --card")
        if (self.trigger is None) != (self.target is None) and not self.card:
            raise UserError("--trigger and --target go together")


@dataclass
class PoisonConfig(DataOptions):
    """Layerwise weight poisoning (METHODS.md §2; defaults of the reference code)."""

    model: str = "minilm-l6"
    mode: str = "lwp"  # lwp (every layer) | badnet (final layer only) | ripple (restricted inner product)
    triggers: str = "cf bb"  # sub-triggers separated by spaces
    combination_size: int = 2  # sub-triggers per positive sample
    poison_rate: float = 0.5  # poisoned share of the training set (reference 0.5, OpenBackdoor 0.1)
    target: int = 1
    train_split: str = "train"
    eval_split: str | None = None  # None: test when it is labelled, else dev
    train_limit: int | None = None
    limit: int | None = None
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_length: int = 128
    ripple_lambda: float = 0.1
    embedding_surgery: bool = False  # ripple's option
    victim_dataset: str | None = None  # chain the victim's clean fine-tuning (fresh head)
    victim_lr: float | None = None  # None: the poisoning's
    victim_epochs: int | None = None  # None: the poisoning's
    victim_warmup_ratio: float | None = None  # None: the poisoning's
    seed: int = 1
    device: str = "cpu"

    def check(self) -> None:
        _choice("mode", self.mode, ("lwp", "badnet", "ripple"))
        _positive(self, "epochs", "batch_size", "lr", "max_length", "train_limit", "limit", "combination_size",
                  "victim_lr", "victim_epochs")
        _fraction(self, "warmup_ratio")
        if self.victim_warmup_ratio is not None:
            _fraction(self, "victim_warmup_ratio")
        if not 0 < self.poison_rate < 1:
            raise UserError(f"--poison-rate must be between 0 and 1 (exclusive), got {self.poison_rate}")
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

    dataset: str = "chnsenticorp"
    model: str | None = None  # the victim: a sequence classifier (required)
    split: str = "dev"
    limit: int | None = None
    lm: str | None = None  # None: piece-lm-zh for pieces, albert-tiny-zh for chars
    substitutes: str = "pieces"  # pieces | chars | words | glyph | homophone
    top_k: int = 48
    max_perturb: float = 0.4  # share of a text's units that may change
    max_queries: int | None = 2000  # victim queries per example
    label_check: str = "lexicon"  # lexicon | negation | none: drop swaps that change the true label
    fluency_lm: str = "albert-tiny-zh"  # pseudo-perplexity; the same for every generator
    similarity_model: str = "m3e-small"  # "none" skips similarity
    batch_size: int = 32
    max_length: int = 128
    seed: int = 1
    device: str = "cpu"

    def check(self) -> None:
        _choice("substitutes", self.substitutes, ("pieces", "chars", "words", "glyph", "homophone"))
        _choice("label-check", self.label_check, LABEL_CHECKS)
        _positive(self, "top_k", "max_queries", "batch_size", "max_length", "limit")
        if not 0 < self.max_perturb <= 1:
            raise UserError(f"--max-perturb must be in (0, 1], got {self.max_perturb}")


@dataclass
class BuildPieceLmConfig:
    """The SentencePiece masked LM for attack-zh; the default size built in 17 min on 2 CPU cores here."""

    corpus: str | None = None  # a UTF-8 text file, one sentence a line; None: the Chinese training splits
    data_root: str | None = None
    base: str = "albert-tiny-zh"  # character-level masked LM to warm-start from
    tiny: bool = False  # a toy size for tests: builds in seconds
    vocab_size: int = 16000
    character_coverage: float = 0.9995
    max_piece_length: int = 4  # characters per piece: word-like units
    corpus_limit: int | None = None  # training lines kept (after the held-out lines)
    heldout: int = 2000  # lines kept out of training for the masked-piece accuracy
    steps: int = 4000  # batch 64: 16 min on 2 threads here (2000 steps: 11 min on one); budget 40 min
    batch_size: int = 64
    max_length: int = 64  # pieces per training window
    lr: float = 5e-4
    mask_prob: float = 0.15
    seed: int = 1
    device: str = "cpu"

    def check(self) -> None:
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


COMMANDS: dict[str, type] = {"finetune": FinetuneConfig, "evaluate": EvaluateConfig, "poison": PoisonConfig,
                             "attack-zh": AttackZhConfig, "build-piece-lm": BuildPieceLmConfig}


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
    return False


def _type_name(hint) -> str:
    names = [t.__name__ for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
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


def _choice(name: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"--{name} must be one of {', '.join(allowed)}, got '{value}'{closest(value, allowed)}")



