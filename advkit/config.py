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

    def check(self) -> None:
        _choice("method", self.method, ("ce", "scl", "moco", "knn"))
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
                raise UserError(f"--lambda-inf must be a number between 0 and 1 or 'auto', got '{self.lambda_inf}'") from None
            _fraction(self, "lambda_inf")
        if self.seeds is not None:
            try:
                parsed = [int(s) for s in str(self.seeds).split(",") if s.strip()]
            except ValueError:
                raise UserError(f"--seeds must be integers separated by commas, got '{self.seeds}'") from None
            if not parsed or len(set(parsed)) != len(parsed):
                raise UserError(f"--seeds must list distinct integers, got '{self.seeds}'")


@dataclass
class EvaluateConfig(DataOptions):
    model: str = "minilm-l6"
    split: str | None = None  # None: test when it is labelled, else dev
    limit: int | None = None
    batch_size: int = 64
    max_length: int = 128
    seed: int = 1
    device: str = "cpu"
    attack: str | None = None  # pwws | deepwordbug | textfooler | bert-attack | bae
    attack_lm: str | None = None  # masked LM for bert-attack / bae
    attack_encoder: str = "minilm-l6"  # sentence encoder standing in for USE
    query_budget: int | None = None

    def check(self) -> None:
        _positive(self, "batch_size", "max_length", "limit", "query_budget")


COMMANDS: dict[str, type] = {"finetune": FinetuneConfig, "evaluate": EvaluateConfig}


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



