"""Validated run configurations: built-in defaults < recipe (TOML) < command-line flags.

The machinery every command's dataclass uses: `opt` (a setting's default and help, written once),
the shared data options, TOML recipes, `build` and the checks. Each command's dataclass lives with
its command (finetune/config.py, poison/config.py, attack_zh/config.py, evaluate.py, attack_texts.py)
and names itself in `COMMAND`. Unknown recipe keys and values of the wrong type are refused with the
closest valid name, so a typo never silently falls back to a default (the habit nanoGPT's
configurator and lm-eval's registries taught us).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

from advkit.errors import UserError, closest


def opt(default, help: str, *flags: str, show: bool = True):
    """A setting: its default and its help live here only; the CLI's option is generated from them.

    `flags` replaces the generated --field-name; `show=False` leaves "[default: ...]" out of the help
    (when the help itself says what the unset value means)."""
    return dataclasses.field(default=default, metadata={"help": help, "flags": flags, "show": show})


PRECISION_HELP = ("auto: bf16 autocast where the hardware computes bf16 natively (CUDA with bf16, a CPU with "
                  "AVX512-BF16 or AMX), else fp32; or bf16 | fp32. The config records the resolved value.")
QUERY_PRECISION = "The victim's queries. " + PRECISION_HELP
TRAIN_PRECISION = "Training and evaluation passes. " + PRECISION_HELP


def precision_option(help: str):
    """Every command's --precision: its default written here once (resolved per machine by
    advkit.precision.resolve, and recorded resolved)."""
    return opt("auto", help)


# The run commands, by the name a recipe's [table] and the CLI give them (each dataclass's COMMAND).
COMMAND_NAMES = ("finetune", "evaluate", "poison", "attack-zh", "build-piece-lm", "attack")


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
    command = cls.COMMAND
    values = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    for table in (k for k, v in raw.items() if isinstance(v, dict) and k not in COMMAND_NAMES):
        raise UserError(f"{path}: unknown table [{table}]{closest(table, COMMAND_NAMES)}")  # a typo'd table is no default
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


def positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


def fraction(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not 0 <= value <= 1:
            raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")


def cosine(cfg, name: str) -> None:
    """A cosine threshold (--min-similarity): unset, or between -1 and 1."""
    value = getattr(cfg, name)
    if value is not None and not -1 <= value <= 1:
        raise UserError(f"--{name.replace('_', '-')} must be between -1 and 1, got {value}")


def check_precision(cfg) -> None:
    """--precision checked, and `auto` replaced by what this machine resolves it to (advkit.precision)."""
    from advkit.precision import PRECISIONS, resolve

    choice("precision", cfg.precision, PRECISIONS)
    cfg.precision = resolve(cfg.precision, cfg.device)


def choice(name: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise UserError(f"--{name} must be one of {', '.join(allowed)}, got '{value}'{closest(value, allowed)}")
