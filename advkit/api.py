"""advkit's commands as Python functions, for notebooks and scripts: `import advkit`, then

    metrics, run = advkit.run_finetune(model="minilm-l6", dataset="sst2", train_limit=2000, out="runs/ce")

One function per command (the names keep clear of the subpackages advkit.finetune and advkit.attack_zh):

    run_finetune    advkit finetune         run_attack_zh   advkit attack-zh
    run_evaluate    advkit evaluate         run_attack      advkit attack
    run_poison      advkit poison           build_piece_lm  advkit build-piece-lm

Each takes its command's config dataclass (FinetuneConfig from advkit.finetune.config, EvaluateConfig from advkit.evaluate, ...) or its settings as
keyword arguments named as the flags are, with underscores (`train_limit=2000` is `--train-limit 2000`),
or both (the keywords then replace the dataclass's values), and optionally `recipe` (a TOML file, as
--recipe). They are validated as the command line validates them, by advkit.config.build: an unknown
name (with the closest valid one), a value of the wrong type, or a bad value raises advkit.UserError
with the message the command line prints after `error:`. A Path may stand for any text setting. None
leaves a setting at its default, as a flag left out does.

Besides the settings: `out` (the run directory; required where the command requires --out),
`overwrite`, `quiet` (no progress bars) and, where the command can continue an interrupted run,
`resume`. Each function runs what its command runs and returns (metrics, run directory): the metrics
as they are written to OUT/metrics.json (JSON's types: lists, string keys), and the folder as a Path,
or None where --out is optional and was not given (evaluate and attack then write nothing).
`run_attack`'s per-text records (each text, its adversarial text with the changes marked) are in
OUT/records.jsonl. Under torchrun every process calls the function; only rank 0's metrics are
returned (the others get an empty dict).
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path

from advkit import config as configs
from advkit.attack_texts import AttackConfig
from advkit.attack_zh.config import AttackZhConfig, BuildPieceLmConfig
from advkit.evaluate import EvaluateConfig
from advkit.finetune.config import FinetuneConfig
from advkit.poison.config import PoisonConfig
from advkit.errors import UserError, closest


def _config(cls: type, config, recipe, settings: dict):
    """The command's config from a dataclass and/or keywords, through configs.build as the CLI's flags go."""
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"expected a {cls.__module__}.{cls.__name__}, got {type(config).__name__}")
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)} if config is not None else {}
    hints = typing.get_type_hints(cls)
    for name, value in settings.items():
        if name not in hints:
            raise UserError(f"unknown setting '{name}'{closest(name, hints)}")
        if isinstance(value, os.PathLike):  # a Path for a folder, a file or a model reference
            value = os.fspath(value)
        kinds = typing.get_args(hints[name]) or (hints[name],)
        if isinstance(value, str) and any(typing.get_origin(t) is list for t in kinds):
            value = [value]  # attack's text="..." for one text
        # the command line's parser checks types; here the recipe check does, with its messages
        if value is not None and not configs._type_ok(value, hints[name]):
            raise UserError(f"{name} must be {configs._type_name(hints[name])}, got {value!r}")
        if type(value) is int and float in kinds and int not in kinds:
            value = float(value)  # lr=1 is 1.0, as the recipe reader has it
        values[name] = value
    cfg = configs.build(cls, recipe, values)
    # build reads None as "flag not given"; a dataclass's own None is its value (checkpoint_seconds=None: never)
    kept = [f.name for f in dataclasses.fields(cls) if config is not None and f.name not in settings
            and getattr(config, f.name) is None and getattr(cfg, f.name) is not None]
    for name in kept:
        setattr(cfg, name, None)
    if kept:
        cfg.check()
    return cfg


def _run(cls: type, config, recipe, settings: dict, quiet: bool, go) -> tuple[dict, Path | None]:
    """Build the config, set the process-wide switches the CLI sets (and restore them after), run `go(cfg)`
    -> (metrics.json's document or None, run directory)."""
    from advkit import data, progress

    cfg = _config(cls, config, recipe, settings)
    before = progress.QUIET, data.SKIP_BAD_ROWS
    progress.QUIET = quiet
    data.SKIP_BAD_ROWS = bool(getattr(cfg, "skip_bad_rows", False))
    try:
        doc, folder = go(cfg)
    finally:
        progress.QUIET, data.SKIP_BAD_ROWS = before
    if doc is None:  # not rank 0 under torchrun
        return {}, folder
    # the numbers as metrics.json holds them, whether or not a file was written
    return json.loads(json.dumps(doc["metrics"], ensure_ascii=False)), folder


def _required(out, command: str) -> Path:
    if out is None:
        raise UserError(f"out is required: {command} writes its run directory there")
    return Path(out)


def run_finetune(config: FinetuneConfig | None = None, *, out: str | Path, overwrite: bool = False,
                 resume: bool = False, quiet: bool = False, recipe: str | Path | None = None,
                 **settings) -> tuple[dict, Path]:
    """`advkit finetune`: fine-tune a model with a fresh head; the model lands in OUT/model.

    Returns (metrics, OUT): eval_accuracy, eval_split, train_examples, train_seconds, ... ; OUT is a
    model reference that run_evaluate and run_attack take.
    """
    def go(cfg):
        from advkit.finetune import train

        return train.main(cfg, _required(out, "finetune"), overwrite=overwrite, resume=resume), Path(out)

    return _run(FinetuneConfig, config, recipe, settings, quiet, go)


def run_evaluate(config: EvaluateConfig | None = None, *, out: str | Path | None = None,
                 overwrite: bool = False, resume: bool = False, quiet: bool = False,
                 recipe: str | Path | None = None, **settings) -> tuple[dict, Path | None]:
    """`advkit evaluate`: clean accuracy, an attack (`attack="pwws"`), backdoor checks, or a card (`card=True`,
    which needs `out`).

    Returns (metrics, OUT or None): accuracy, or accuracy_before / accuracy_under_attack /
    attack_success_rate under an attack, ... as metrics.json names them.
    """
    def go(cfg):
        from advkit import card, evaluate

        doc = (card.main if cfg.card else evaluate.main)(cfg, out, overwrite=overwrite, resume=resume)
        return doc, Path(out) if out is not None else None

    return _run(EvaluateConfig, config, recipe, settings, quiet, go)


def run_poison(config: PoisonConfig | None = None, *, out: str | Path, overwrite: bool = False,
               quiet: bool = False, recipe: str | Path | None = None, **settings) -> tuple[dict, Path]:
    """`advkit poison`: layerwise weight poisoning (and, with `victim_dataset`, the victim's fine-tuning);
    the poisoned encoder lands in OUT/model."""
    def go(cfg):
        from advkit import distributed, pipeline

        folder = _required(out, "poison")
        return distributed.main("poison", folder, overwrite, False, lambda run: pipeline.poison(cfg, run)), folder

    return _run(PoisonConfig, config, recipe, settings, quiet, go)


def run_attack_zh(config: AttackZhConfig | None = None, *, out: str | Path, overwrite: bool = False,
                  resume: bool = False, quiet: bool = False, recipe: str | Path | None = None,
                  **settings) -> tuple[dict, Path]:
    """`advkit attack-zh`: Chinese adversarial examples over a data-set slice; records in OUT/records.jsonl."""
    def go(cfg):
        from advkit.attack_zh import run

        return run.main(cfg, _required(out, "attack-zh"), overwrite=overwrite, resume=resume), Path(out)

    return _run(AttackZhConfig, config, recipe, settings, quiet, go)


def run_attack(config: AttackConfig | None = None, *, out: str | Path | None = None,
               overwrite: bool = False, quiet: bool = False, recipe: str | Path | None = None,
               **settings) -> tuple[dict, Path | None]:
    """`advkit attack`: attack texts (`text="..."` or a list, or `file=...`) against `model` with `attack`.

    Returns (metrics, OUT or None); each text's record (status, adversarial text, `marked` with its
    changes as [[old->new]], prediction_before / prediction_after) is in OUT/records.jsonl. `export`
    writes the successes with their true labels as a data set for run_finetune.
    """
    def go(cfg):
        from advkit import attack_texts

        result = attack_texts.main(cfg, out, overwrite=overwrite)
        return {"metrics": result["metrics"]}, result["run"]

    return _run(AttackConfig, config, recipe, settings, quiet, go)


def build_piece_lm(config: BuildPieceLmConfig | None = None, *, out: str | Path | None = None,
                   overwrite: bool = False, quiet: bool = False, recipe: str | Path | None = None,
                   **settings) -> tuple[dict, Path]:
    """`advkit build-piece-lm`: the SentencePiece masked LM that zh-pieces draws from (out unset: the
    cache's piece-lm-zh, where the alias finds it)."""
    def go(cfg):
        from advkit import distributed
        from advkit.attack_zh import piece_lm

        folder = Path(out) if out is not None else piece_lm.default_folder()
        doc = distributed.main("build-piece-lm", folder, overwrite, False, lambda run: piece_lm.run(cfg, run))
        return doc, folder

    return _run(BuildPieceLmConfig, config, recipe, settings, quiet, go)


COMMANDS = {"finetune": run_finetune, "evaluate": run_evaluate, "poison": run_poison, "attack-zh": run_attack_zh,
            "attack": run_attack, "build-piece-lm": build_piece_lm}
