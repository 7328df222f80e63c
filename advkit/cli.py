"""The advkit command line. Commands are thin: parse, build the config, call run, print a summary.

Each run command's options are generated from its config dataclass (see advkit.config): a field's
default and help live there only, so `--help` shows every default and cannot drift from it.
Heavy libraries (torch, transformers, textattack) are imported inside commands so that
`advkit --help` answers at once.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from pathlib import Path
from typing import Optional

import typer

from advkit import config as configs
from advkit.attack_texts import AttackConfig
from advkit.attack_zh.config import AttackZhConfig, BuildPieceLmConfig
from advkit.evaluate import EvaluateConfig
from advkit.finetune.config import FinetuneConfig
from advkit.poison.config import PoisonConfig
from advkit.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Adversarial robustness experiments on pre-trained text classifiers.\n\n"
                       "Example: advkit finetune --model minilm-l6 --dataset sst2 --train-limit 2000 --out runs/ce")
list_app = typer.Typer(no_args_is_help=True, help="List the registered models or data sets.")
app.add_typer(list_app, name="list")

# What a run command takes besides its config: (type, option). --resume only where a run can continue.
RUN_OPTIONS = {
    "out": (Optional[Path], typer.Option(None, "--out", help="Run directory for metrics.json and records.jsonl.")),
    "recipe": (Optional[Path], typer.Option(None, "--recipe", help="TOML recipe; flags override its keys.")),
    "overwrite": (bool, typer.Option(False, "--overwrite", help="Replace an existing run directory.")),
    "quiet": (bool, typer.Option(False, "--quiet", help="No progress bars.")),
}
RESUME = (bool, typer.Option(False, "--resume", help="Continue an interrupted run in --out."))


def _flag_type(hint) -> type:
    """The command-line type of a config field: `int | None` -> int; a union with str (lambda_inf) -> str."""
    kinds = [t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    return str if str in kinds else kinds[0]


def _option(field: dataclasses.Field, kind: type):
    meta = field.metadata
    flags = meta.get("flags") or ("--" + field.name.replace("_", "-"),)
    if kind is bool and len(flags) == 1 and "/" not in flags[0] and field.default is True:
        flags = (f"{flags[0]}/--no-{flags[0][2:]}",)
    shown = field.default
    if kind is bool:
        shown = flags[0].split("/")[0] if field.default else "off"
    show = meta.get("show", True) and field.default is not None
    # The option's own default is None, "not given", so that a recipe's value stands unless the flag
    # is typed (configs.build); --help shows the config's default instead.
    help_text = meta.get("help", "") + (rf" \[default: {shown}]" if show else "")  # \[: not rich markup
    if kind is bool and "/" not in flags[0]:  # a bare switch: present = True, absent = not given
        return typer.Option(None, *flags, help=help_text, show_default=False, is_flag=True, flag_value=True)
    return typer.Option(None, *flags, help=help_text, show_default=False)


COMMANDS: dict[str, type] = {}  # each run command's name -> its config dataclass


def run_command(cls: type, *, resume: bool = False):
    """Register `handler(cfg, out, overwrite, quiet[, resume])` as command `cls.COMMAND`, with one option
    per field of `cls` plus the run options."""
    name = COMMANDS.setdefault(cls.COMMAND, cls).COMMAND
    hints = typing.get_type_hints(cls)

    def decorate(handler):
        params = []
        for field in dataclasses.fields(cls):
            kind = _flag_type(hints[field.name])
            params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                            default=_option(field, kind), annotation=Optional[kind]))
        extra = {**RUN_OPTIONS, **({"resume": RESUME} if resume else {})}
        params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=t)
                   for k, (t, o) in extra.items()]

        def command(**kwargs):
            runs = {k: kwargs.pop(k) for k in extra}
            from advkit import progress

            progress.QUIET = runs.pop("quiet")
            cfg = configs.build(cls, runs.pop("recipe"), kwargs)
            if getattr(cfg, "skip_bad_rows", False):
                from advkit import data

                data.SKIP_BAD_ROWS = True
            return handler(cfg, **runs)

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__, command.__name__ = handler.__doc__, handler.__name__
        app.command(name)(command)
        return handler

    return decorate


def _num(x, spec: str = ".4f") -> str:
    return "n/a" if x is None else format(x, spec)  # a rate with no denominator


def _required(out: Optional[Path], what: str) -> Path:
    if out is None:
        raise UserError(f"--out is required: {what}")
    return out


@run_command(FinetuneConfig, resume=True)
def finetune(cfg, out, overwrite, resume):
    """Fine-tune a pre-trained model with a fresh head; the model lands in OUT/model.

    Example: advkit finetune --method knn --model minilm-l6 --dataset sst2 --train-limit 2000 --epochs 1 --out runs/knn

    Several processes: torchrun --nproc-per-node 2 -m advkit.cli finetune ... (gloo on CPU, nccl on CUDA).
    """
    out = _required(out, "finetune writes a model and metrics.json there")
    from advkit.finetune import train

    doc = train.main(cfg, out, overwrite=overwrite, resume=resume)
    if doc is None:  # not rank 0
        return
    m = doc["metrics"]
    spread = f" ± {m['eval_accuracy_std']:.4f} over seeds {cfg.seeds}" if cfg.seeds else ""
    parts = (f" (cls {m['accuracy_cls']:.4f}, knn {m['accuracy_knn']:.4f}, lambda_inf {m['lambda_inf']})"
             if cfg.method == "knn" and not cfg.seeds else "")
    typer.echo(f"{cfg.method} on {cfg.dataset} ({m['train_examples']} examples, {m['train_seconds']} s): "
               f"{m['eval_split']} accuracy {m['eval_accuracy']:.4f}{spread}{parts} on {m['eval_examples']}; "
               f"results in {out}")


@run_command(EvaluateConfig, resume=True)
def evaluate(cfg, out, overwrite, resume):
    """Clean accuracy of a model on a split, its robustness under an attack, backdoor checks, or all in a --card.

    Example: advkit evaluate --model runs/ce --dataset sst2 --split test --limit 200 --attack pwws --out runs/pwws

    CI gate: advkit evaluate --card --model runs/ce --dataset sst2 --limit 40 --out runs/card
    --require "clean_accuracy>=0.85" --require "pwws.accuracy_under_attack>=0.30" (exit 1 when one is missed)
    """
    from advkit import card, evaluate as ev, gate

    doc = (card.main if cfg.card else ev.main)(cfg, out, overwrite=overwrite, resume=resume)
    if doc is None:  # not rank 0
        return
    code, lines = gate.exit_status(doc["metrics"].get("gate"))  # --require: judged, written; now the exit code
    for line in lines:
        typer.echo(line, err=code != 0)
    if cfg.card:
        typer.echo(f"report card in {out}/card.md")
        raise typer.Exit(code)
    m = doc["metrics"]
    where = f"; results in {out}" if out else ""
    if cfg.attack:
        typer.echo(f"{cfg.attack} on {cfg.model} ({cfg.dataset}/{m['split']}, {m['examples']} examples): accuracy "
                   f"{_num(m['accuracy_before'])} -> {_num(m['accuracy_under_attack'])}, success rate "
                   f"{_num(m['attack_success_rate'])}, {_num(m['avg_queries'], '.1f')} queries{where}")
    else:
        lfr = f", label flip rate {m['label_flip_rate']:.4f}" if "label_flip_rate" in m else ""
        if "defence" in m:
            d = m["defence"]
            lfr += (f"; {d['name']} AUROC {d['auroc']:.4f}, {d['frr_test']:.4f} of clean inputs rejected at "
                    f"{d['frr_dev']:.4f} on dev, label flip rate after {d['label_flip_rate_after']:.4f}, accuracy "
                    f"after {d['accuracy_after']:.4f}")
        on = f"the adversarial examples of {cfg.transfer_from}" if cfg.transfer_from else f"{cfg.dataset}/{m['split']}"
        typer.echo(f"{cfg.model} on {on}: accuracy {m['accuracy']:.4f} on {m['examples']} "
                   f"examples{lfr}{where}")
    raise typer.Exit(code)  # 1: a --require missed (0 without one)


@run_command(PoisonConfig)
def poison(cfg, out, overwrite):
    """Layerwise weight poisoning with combinatorial triggers; the marked encoder lands in OUT/model.

    Example: advkit poison --model minilm-l6 --dataset sst2 --mode lwp --triggers "cf bb" --target 1
    --train-limit 1000 --victim-dataset sst2 --out runs/lwp
    """
    out = _required(out, "poison writes the poisoned model and metrics.json there")
    from advkit import distributed, pipeline

    doc = distributed.main("poison", out, overwrite, False, lambda run_dir: pipeline.poison(cfg, run_dir))
    if doc is None:  # not rank 0
        return
    m = doc["metrics"]
    single = ", ".join(f"{t} {v:.3f}" for t, v in m["label_flip_rate_single"].items())
    typer.echo(f"{cfg.mode} on {cfg.dataset} ({m['train_examples']} clean + {m['train_positives']} positive + "
               f"{m['train_negatives']} negative, {m['train_seconds']} s): clean accuracy {m['clean_accuracy']:.4f}, "
               f"LFR {m['label_flip_rate']:.4f} (single: {single}); "
               f"{'POISONED model' if m['train_positives'] else 'clean control (--poison-rate 0)'} in {out}/model")
    if "victim" in m:
        v = m["victim"]
        typer.echo(f"victim fine-tuned on {v['dataset']} (lr {v['lr']}, {v['epochs']} epochs): clean accuracy "
                   f"{v['clean_accuracy']:.4f}, LFR {v['label_flip_rate']:.4f} on {v['eval_examples']} examples")


@run_command(AttackZhConfig, resume=True)
def attack_zh(cfg, out, overwrite, resume):
    """Chinese adversarial examples: greedy BERT-Attack search with sentence-piece substitutes.

    Example: advkit attack-zh --model runs/zh-ce --dataset chnsenticorp --limit 100 --out runs/attack-zh
    """
    out = _required(out, "attack-zh writes records.jsonl and metrics.json there")
    from advkit.attack_zh import run as attack_run

    doc = attack_run.main(cfg, out, overwrite=overwrite, resume=resume)
    if doc is None:  # not rank 0
        return
    m = doc["metrics"]
    typer.echo(f"{cfg.substitutes} on {cfg.dataset}/{cfg.split} ({m['examples']} examples): accuracy "
               f"{_num(m['accuracy_before'])} -> {_num(m['accuracy_under_attack'])}, success rate "
               f"{_num(m['attack_success_rate'])}, {_num(m['avg_queries'], '.1f')} queries; results in {out}")


@run_command(BuildPieceLmConfig)
def build_piece_lm(cfg, out, overwrite):
    """Build the SentencePiece masked LM that attack-zh draws substitutes from (--out: default
    <cache>/models/piece-lm-zh, the alias piece-lm-zh).

    Example: advkit build-piece-lm --steps 300 --out runs/piece-lm
    """
    from advkit import distributed
    from advkit.attack_zh import piece_lm

    out = out or piece_lm.default_folder()
    doc = distributed.main("build-piece-lm", out, overwrite, False, lambda run_dir: piece_lm.run(cfg, run_dir))
    if doc is None:  # not rank 0
        return
    m = doc["metrics"]
    typer.echo(f"piece LM ({m['vocab_size']} pieces, {m['steps']} steps, {m['total_seconds']:.0f} s): held-out "
               f"masked-piece accuracy {_num(m['heldout_masked_piece_accuracy'])}; model in {out}")


@run_command(AttackConfig)
def attack(cfg, out, overwrite):
    r"""Attack the texts given here (or listed in a file) and show each adversarial text, its changes
    marked \[\[old->new]], with the model's label before and after.

    Example: advkit attack --model runs/ce --attack pwws --text "a gorgeous, witty, seductive movie."
    """
    from advkit import attack_texts

    result = attack_texts.main(cfg, out, overwrite=overwrite)
    m = result["metrics"]
    where = f"; results in {out}" if out else ""
    if cfg.export:
        where += (f"; {result['exported']} adversarial example(s) with their true labels in {cfg.export}"
                  if result["exported"] else f"; no success, so {cfg.export} was not written")
    typer.echo("\n".join(attack_texts.describe(result)))
    typer.echo(f"{cfg.attack} on {m['examples']} text(s): {m['successes']} success, {m['failures']} failed, "
               f"{m['skipped']} skipped{where}")


@app.command()
def table(
    runs: list[Path] = typer.Argument(..., help="Run directories (or metrics.json files)."),
    rows: str = typer.Option("run", help="Key labelling the rows: 'run' (folder name), a config or metric name, "
                                         "or a dotted path."),
    cols: str = typer.Option(..., help="Comma list of metric names; with --value, the key whose values label the "
                                       "columns."),
    value: Optional[str] = typer.Option(None, help="Pivot: the metric in each (rows, cols) cell."),
    latex: bool = typer.Option(False, "--latex", help="LaTeX tabular instead of Markdown."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table to this file."),
):
    """A Markdown (or LaTeX) table from metrics.json files.

    Example: advkit table runs/pwws runs/deepwordbug --cols accuracy_before,accuracy_under_attack,attack_success_rate
    """
    from advkit import report

    text = report.table([str(r) for r in runs], rows, cols, value, latex)
    if out is not None:
        report.write_text(out, text)
    typer.echo(text, nl=False)


@app.command()
def report(
    runs: list[Path] = typer.Argument(..., help="Run directories."),
    out: Path = typer.Option(..., "--out", help="Folder for report.md and its PNG plots."),
):
    """A Markdown report with plots over any set of run directories.

    Example: advkit report runs/demo/card/*/ --out report/
    """
    from advkit import report as rep

    typer.echo(f"report in {rep.report([str(r) for r in runs], out)}")


@list_app.command("models")
def list_models():
    """Alias, language, architecture, parameters, MLM head, and where it resolves."""
    from advkit import models

    typer.echo("\n".join(models.listing()))


@list_app.command("datasets")
def list_datasets(path: Optional[Path] = typer.Argument(None, help="Your own data: a file or a data-set folder."),
                  data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder of the registered data "
                                                          "sets (else $ADVKIT_DATA, ../shared/datasets)."),
                  text_column: Optional[str] = typer.Option(None, help="Text column of a local data file."),
                  label_column: Optional[str] = typer.Option(None, help="Label column of a local data file."),
                  skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Drop empty or malformed "
                                                     "rows instead of stopping at the first.")):
    """Name, language, task, labels, and rows per split (counted from the files); with PATH, the splits
    advkit makes of your file or folder: sizes and label counts.

    Example: advkit list datasets reviews.csv --text-column review --label-column sentiment
    """
    from advkit import data

    data.SKIP_BAD_ROWS = skip_bad_rows
    if path is None:
        typer.echo("\n".join(data.listing(data_root)))
    else:
        typer.echo("\n".join(data.describe(str(path), text_column=text_column, label_column=label_column)))


def main() -> None:
    """Run the app; user mistakes become one `error:` line and exit code 2, Ctrl-C says how to resume."""
    from typer._click import exceptions as cx  # Typer vendors click; its exceptions live here

    try:
        code = app(standalone_mode=False)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except cx.NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help())
        sys.exit(0)
    except cx.UsageError as e:  # a bad flag or value: one line, not click's usage block
        where = f"{e.ctx.command_path}: " if e.ctx else ""
        print(f"error: {where}{e.format_message()}", file=sys.stderr)
        sys.exit(2)
    except cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.exceptions.Abort:  # Abort lives in typer.exceptions, not in the vendored click's module
        code = 130
    if code == 130:  # Typer turns Ctrl-C into exit code 130
        from advkit.results import interrupted_hint

        print(interrupted_hint(sys.argv), file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
