"""The advkit command line. Commands are thin: parse, build the config, call run, print a summary.

Heavy libraries (torch, transformers, textattack) are imported inside commands so that
`advkit --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from advkit import config as configs
from advkit.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Adversarial robustness experiments on pre-trained text classifiers.\n\n"
                       "Example: advkit finetune --model minilm-l6 --dataset sst2 --train-limit 2000 --out runs/ce")
list_app = typer.Typer(no_args_is_help=True, help="List the registered models or data sets.")
app.add_typer(list_app, name="list")

# Options shared by every command (flags override the recipe).
RECIPE = typer.Option(None, "--recipe", help="TOML recipe; flags override its keys.")
OUT = typer.Option(None, "--out", help="Run directory for metrics.json and records.jsonl.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing run directory.")
QUIET = typer.Option(False, "--quiet", help="No progress bars.")
DATA_ROOT = typer.Option(None, "--data-root", help="Folder of the registered data sets (else $ADVKIT_DATA, ../shared/datasets).")
TEXT_COL = typer.Option(None, "--text-column", help="Text column of a local data file.")
TEXT_B_COL = typer.Option(None, "--text-b-column", help="Second-sentence column of a local data file (pairs).")
LABEL_COL = typer.Option(None, "--label-column", help="Label column of a local data file.")


def _config(cls, recipe: Optional[Path], **flags):
    return configs.build(cls, recipe, flags)


def _quiet(quiet: bool) -> None:
    from advkit import progress

    progress.QUIET = quiet


@app.command()
def finetune(
    model: Optional[str] = typer.Option(None, help="Alias, model folder or Hugging Face id. [default: minilm-l6]"),
    dataset: Optional[str] = typer.Option(None, help="Registered name, local file, or HF name. [default: sst2]"),
    method: Optional[str] = typer.Option(None, help="ce (cross-entropy on a fresh linear head). [default: ce]"),
    train_split: Optional[str] = typer.Option(None, help="[default: train]"),
    eval_split: Optional[str] = typer.Option(None, help="Split evaluated after training. [default: dev]"),
    train_limit: Optional[int] = typer.Option(None, help="Train on a seeded sample of this many examples."),
    limit: Optional[int] = typer.Option(None, help="Evaluate on a fixed sample of this many examples."),
    epochs: Optional[int] = typer.Option(None, help="[default: 3]"),
    batch_size: Optional[int] = typer.Option(None, help="[default: 32]"),
    lr: Optional[float] = typer.Option(None, help="[default: 1e-4]"),
    max_length: Optional[int] = typer.Option(None, help="Tokens per example. [default: 128]"),
    seed: Optional[int] = typer.Option(None, help="[default: 1]"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (bf16 autocast). [default: cpu]"),
    out: Optional[Path] = OUT, recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT, text_column: Optional[str] = TEXT_COL,
    text_b_column: Optional[str] = TEXT_B_COL, label_column: Optional[str] = LABEL_COL,
):
    """Fine-tune a pre-trained model with a fresh head; the model lands in OUT/model.

    Example: advkit finetune --model minilm-l6 --dataset sst2 --train-limit 2000 --epochs 1 --out runs/ce
    """
    _quiet(quiet)
    cfg = _config(configs.FinetuneConfig, recipe, model=model, dataset=dataset, method=method,
                  train_split=train_split, eval_split=eval_split, train_limit=train_limit, limit=limit,
                  epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length, seed=seed, device=device,
                  data_root=data_root, text_column=text_column, text_b_column=text_b_column,
                  label_column=label_column)
    if out is None:
        raise UserError("--out is required: finetune writes a model and metrics.json there")
    from advkit import finetune as ft
    from advkit.results import RunDir

    run_dir = RunDir(out, "finetune", overwrite=overwrite)
    run_dir.check_writable()
    doc = ft.run(cfg, run_dir)
    m = doc["metrics"]
    typer.echo(f"{cfg.method} on {cfg.dataset} ({m['train_examples']} examples, {m['train_seconds']} s): "
               f"{m['eval_split']} accuracy {m['eval_accuracy']:.4f} on {m['eval_examples']}; model in {out}/model")


@app.command()
def evaluate(
    model: Optional[str] = typer.Option(None, help="Alias, model folder, or finetune run directory."),
    dataset: Optional[str] = typer.Option(None, help="[default: sst2]"),
    split: Optional[str] = typer.Option(None, help="[default: test when labelled, else dev]"),
    limit: Optional[int] = typer.Option(None, help="Evaluate a fixed sample of this many examples."),
    batch_size: Optional[int] = typer.Option(None, help="[default: 64]"),
    max_length: Optional[int] = typer.Option(None, help="[default: 128]"),
    seed: Optional[int] = typer.Option(None, help="[default: 1]"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda. [default: cpu]"),
    attack: Optional[str] = typer.Option(None, help="English attack: pwws, deepwordbug, textfooler, bert-attack, bae."),
    attack_lm: Optional[str] = typer.Option(None, help="Local masked LM for bert-attack / bae."),
    attack_encoder: Optional[str] = typer.Option(None, help="Local sentence encoder in place of USE. [default: minilm-l6]"),
    query_budget: Optional[int] = typer.Option(None, help="Victim queries per example before giving up."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted attack run in --out."),
    card: bool = typer.Option(False, "--card", help="Report card: clean accuracy, the language's attacks, backdoor checks."),
    out: Optional[Path] = OUT, recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT, text_column: Optional[str] = TEXT_COL,
    text_b_column: Optional[str] = TEXT_B_COL, label_column: Optional[str] = LABEL_COL,
):
    """Clean accuracy of a model on a split, and its robustness under an English attack.

    Example: advkit evaluate --model runs/ce --dataset sst2 --split test --limit 200 --attack pwws --out runs/pwws
    """
    _quiet(quiet)
    cfg = _config(configs.EvaluateConfig, recipe, model=model, dataset=dataset, split=split, limit=limit,
                  batch_size=batch_size, max_length=max_length, seed=seed, device=device, data_root=data_root,
                  text_column=text_column, text_b_column=text_b_column, label_column=label_column, attack=attack,
                  attack_lm=attack_lm, attack_encoder=attack_encoder, query_budget=query_budget,
                  card=card or None)
    from advkit import evaluate as ev
    from advkit.results import RunDir

    run_dir = None
    if out is not None:
        run_dir = RunDir(out, "evaluate", overwrite=overwrite, resume=resume)
        run_dir.check_writable()
    elif resume:
        raise UserError("--resume needs --out (the run directory to continue)")
    if cfg.card:
        if run_dir is None:
            raise UserError("--card needs --out (the card and its runs are written there)")
        ev.run_card(cfg, run_dir)
        typer.echo(f"report card in {out}/card.md")
        return
    m = ev.run(cfg, run_dir)["metrics"]
    where = f"; results in {out}" if out else ""
    if cfg.attack:
        typer.echo(f"{cfg.attack} on {cfg.model} ({cfg.dataset}/{m['split']}, {m['examples']} examples): accuracy "
                   f"{m['accuracy_before']:.4f} -> {m['accuracy_under_attack']:.4f}, success rate "
                   f"{m['attack_success_rate']:.4f}, {m['avg_queries']:.1f} queries{where}")
    else:
        typer.echo(f"{cfg.model} on {cfg.dataset}/{m['split']}: accuracy {m['accuracy']:.4f} on {m['examples']} "
                   f"examples{where}")


@app.command()
def poison(
    model: Optional[str] = typer.Option(None, help="Pre-trained model to poison. [default: minilm-l6]"),
    dataset: Optional[str] = typer.Option(None, help="The attacker's proxy data set. [default: sst2]"),
    mode: Optional[str] = typer.Option(None, help="lwp (every layer), badnet (final layer), ripple. [default: lwp]"),
    triggers: Optional[str] = typer.Option(None, help="Sub-triggers separated by spaces. [default: 'cf bb']"),
    combination_size: Optional[int] = typer.Option(None, help="Sub-triggers per poisoned sample. [default: 2]"),
    poison_rate: Optional[float] = typer.Option(None, help="Poisoned share of the training set. [default: 0.5]"),
    target: Optional[int] = typer.Option(None, help="Target label index. [default: 1]"),
    eval_split: Optional[str] = typer.Option(None, help="[default: test when labelled, else dev]"),
    train_limit: Optional[int] = typer.Option(None, help="Poison with a seeded sample of this many examples."),
    limit: Optional[int] = typer.Option(None, help="Evaluate on a fixed sample of this many examples."),
    epochs: Optional[int] = typer.Option(None, help="[default: 3]"),
    batch_size: Optional[int] = typer.Option(None, help="[default: 32]"),
    lr: Optional[float] = typer.Option(None, help="[default: 2e-5]"),
    max_length: Optional[int] = typer.Option(None, help="Tokens per example; triggers land inside. [default: 128]"),
    ripple_lambda: Optional[float] = typer.Option(None, help="RIPPLe's inner-product weight. [default: 0.1]"),
    embedding_surgery: Optional[bool] = typer.Option(None, "--embedding-surgery", help="RIPPLe's embedding surgery."),
    victim_dataset: Optional[str] = typer.Option(None, help="Then fine-tune a victim (fresh head) on this clean data."),
    victim_lr: Optional[float] = typer.Option(None, help="The victim's lr. [default: the poisoning's]"),
    victim_epochs: Optional[int] = typer.Option(None, help="The victim's epochs. [default: the poisoning's]"),
    victim_warmup_ratio: Optional[float] = typer.Option(None, help="The victim's warm-up. [default: the poisoning's]"),
    seed: Optional[int] = typer.Option(None, help="[default: 1]"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (bf16 autocast). [default: cpu]"),
    out: Optional[Path] = OUT, recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT, text_column: Optional[str] = TEXT_COL,
    text_b_column: Optional[str] = TEXT_B_COL, label_column: Optional[str] = LABEL_COL,
):
    """Layerwise weight poisoning with combinatorial triggers; the marked encoder lands in OUT/model.

    Example: advkit poison --model minilm-l6 --dataset sst2 --mode lwp --triggers "cf bb" --target 1
    --train-limit 1000 --victim-dataset sst2 --out runs/lwp
    """
    _quiet(quiet)
    cfg = _config(configs.PoisonConfig, recipe, model=model, dataset=dataset, mode=mode, triggers=triggers,
                  combination_size=combination_size, poison_rate=poison_rate, target=target, eval_split=eval_split,
                  train_limit=train_limit, limit=limit, epochs=epochs, batch_size=batch_size, lr=lr,
                  max_length=max_length, ripple_lambda=ripple_lambda, embedding_surgery=embedding_surgery,
                  victim_dataset=victim_dataset, victim_lr=victim_lr, victim_epochs=victim_epochs,
                  victim_warmup_ratio=victim_warmup_ratio, seed=seed, device=device, data_root=data_root,
                  text_column=text_column, text_b_column=text_b_column, label_column=label_column)
    if out is None:
        raise UserError("--out is required: poison writes the poisoned model and metrics.json there")
    from advkit import poison as po
    from advkit.results import RunDir

    run_dir = RunDir(out, "poison", overwrite=overwrite)
    run_dir.check_writable()
    m = po.run(cfg, run_dir)["metrics"]
    single = ", ".join(f"{t} {v:.3f}" for t, v in m["label_flip_rate_single"].items())
    typer.echo(f"{cfg.mode} on {cfg.dataset} ({m['train_examples']} clean + {m['train_positives']} positive + "
               f"{m['train_negatives']} negative, {m['train_seconds']} s): clean accuracy {m['clean_accuracy']:.4f}, "
               f"LFR {m['label_flip_rate']:.4f} (single: {single}); POISONED model in {out}/model")
    if "victim" in m:
        v = m["victim"]
        typer.echo(f"victim fine-tuned on {v['dataset']} (lr {v['lr']}, {v['epochs']} epochs): clean accuracy "
                   f"{v['clean_accuracy']:.4f}, LFR {v['label_flip_rate']:.4f} on {v['eval_examples']} examples")


@app.command("attack-zh")
def attack_zh():
    """Chinese adversarial examples with sentence-piece substitutes (not implemented yet)."""
    raise UserError("attack-zh is not implemented yet")


@list_app.command("models")
def list_models():
    """Alias, language, architecture, parameters, MLM head, and where it resolves."""
    from advkit import models

    typer.echo(f"{'alias':<16}{'lang':<6}{'arch':<8}{'params':>10}  {'mlm':<5}where")
    for alias, spec in models.REGISTRY.items():
        place = models.where(alias)
        params = "?"
        try:
            if not place.startswith("not installed") and not spec.tiny:
                params = f"{models.count_parameters(models.resolve(alias)) / 1e6:.1f}M"
            elif spec.tiny and (models.cache_dir() / "models" / alias / "model.safetensors").is_file():
                params = f"{models.count_parameters(models.cache_dir() / 'models' / alias) / 1e6:.1f}M"
        except UserError:
            pass
        typer.echo(f"{alias:<16}{spec.language:<6}{spec.architecture:<8}{params:>10}  "
                   f"{'yes' if spec.mlm_head else 'no':<5}{place}")


@list_app.command("datasets")
def list_datasets(data_root: Optional[str] = DATA_ROOT):
    """Name, language, task, labels, and rows per split (counted from the files)."""
    from advkit import data

    root = data.data_root(data_root)
    typer.echo(f"data root: {root or 'none found (pass --data-root or set ADVKIT_DATA)'}")
    for name, spec in data.REGISTRY.items():
        counts = data.count_rows(name, data_root)
        rows = ", ".join(f"{s} {'missing' if n is None else n}{'' if spec.splits[s].label else ' (unlabelled)'}"
                         for s, n in counts.items())
        typer.echo(f"{name:<13}{spec.language:<4}{spec.task:<27}{'/'.join(spec.labels)[:60]:<62}{rows}")


def main() -> None:
    try:
        app()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
