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
    method: Optional[str] = typer.Option(None, help="ce, scl (Gunel et al.), moco, or knn (KNN-BERT). [default: ce]"),
    train_split: Optional[str] = typer.Option(None, help="[default: train]"),
    eval_split: Optional[str] = typer.Option(None, help="Split evaluated after training. [default: dev]"),
    train_limit: Optional[int] = typer.Option(None, help="Train on a seeded sample of this many examples."),
    limit: Optional[int] = typer.Option(None, help="Evaluate on a fixed sample of this many examples."),
    epochs: Optional[int] = typer.Option(None, help="[default: 3]"),
    batch_size: Optional[int] = typer.Option(None, help="[default: 32]"),
    lr: Optional[float] = typer.Option(None, help="[default: 1e-4]"),
    warmup_ratio: Optional[float] = typer.Option(None, help="Share of steps with linear warm-up. [default: 0.06]"),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay. [default: 0.01]"),
    max_length: Optional[int] = typer.Option(None, help="Tokens per example. [default: 128]"),
    seed: Optional[int] = typer.Option(None, help="[default: 1]"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (bf16 autocast). [default: cpu]"),
    pooling: Optional[str] = typer.Option(
        None, help="Representation for the contrastive space and KNN: cls, mean, pooler. [default: pooler]"),
    momentum: Optional[float] = typer.Option(None, help="EMA of the key encoder (moco, knn). [default: 0.999]"),
    queue_size: Optional[int] = typer.Option(None, help="Keys in the queue. [default: 32000]"),
    projection_dim: Optional[int] = typer.Option(None, help="[default: 128]"),
    top_k: Optional[int] = typer.Option(None, help="Most similar same-label keys kept as positives. [default: 100]"),
    end_k: Optional[int] = typer.Option(None, help="Least similar (hardest) positives kept. [default: 1]"),
    tau: Optional[float] = typer.Option(None, help="Contrastive temperature. [default: 0.07; scl 0.3]"),
    lambda_con: Optional[float] = typer.Option(None, "--lambda", "--lambda-con",
                                               help="Weight of the contrastive loss against CE. [default: 0.1]"),
    positives_per_query: Optional[int] = typer.Option(
        None, help="N > 0: the reference's N same-label examples per query (N extra passes). [default: 0, queue]"),
    knn_k: Optional[int] = typer.Option(None, help="Neighbours that vote. [default: 10]"),
    knn_weighting: Optional[str] = typer.Option(None, help="uniform or temperature (exp(s/knn_tau)). "
                                                           "[default: uniform]"),
    knn_tau: Optional[float] = typer.Option(None, help="[default: 0.07]"),
    lambda_inf: Optional[str] = typer.Option(
        None, help="Weight of p_knn at inference, or 'auto' (chosen off the eval split). [default: 0.1]"),
    datastore: Optional[str] = typer.Option(None, help="train (re-encoded training split) or queue. [default: train]"),
    shots: Optional[int] = typer.Option(None, help="Few-shot: K training examples per class, drawn with the seed."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds, one run each (OUT/seed-S), "
                                                   "e.g. 13,21,42,87,100."),
    save_model: Optional[bool] = typer.Option(None, "--save-model/--no-save-model", help="[default: save]"),
    reinit_layers: Optional[int] = typer.Option(None, help="Re-initialise the top N encoder layers first "
                                                           "(a defence against weight poisoning). [default: 0]"),
    checkpoint_seconds: Optional[float] = typer.Option(None, help="Write OUT/checkpoint.pt at most this often, "
                                                                  "for --resume. [default: 120]"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out from its checkpoint."),
    out: Optional[Path] = OUT, recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT, text_column: Optional[str] = TEXT_COL,
    text_b_column: Optional[str] = TEXT_B_COL, label_column: Optional[str] = LABEL_COL,
):
    """Fine-tune a pre-trained model with a fresh head; the model lands in OUT/model.

    Example: advkit finetune --method knn --model minilm-l6 --dataset sst2 --train-limit 2000 --epochs 1 --out runs/knn

    Several processes: torchrun --nproc-per-node 2 -m advkit.cli finetune ... (gloo on CPU, nccl on CUDA).
    """
    _quiet(quiet)
    cfg = _config(configs.FinetuneConfig, recipe, model=model, dataset=dataset, method=method,
                  train_split=train_split, eval_split=eval_split, train_limit=train_limit, limit=limit,
                  epochs=epochs, batch_size=batch_size, lr=lr, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                  max_length=max_length, seed=seed, device=device, pooling=pooling, momentum=momentum, queue_size=queue_size, projection_dim=projection_dim,
                  top_k=top_k, end_k=end_k, tau=tau, lambda_con=lambda_con, positives_per_query=positives_per_query,
                  knn_k=knn_k, knn_weighting=knn_weighting, knn_tau=knn_tau, lambda_inf=lambda_inf,
                  datastore=datastore, shots=shots, seeds=seeds, save_model=save_model,
                  reinit_layers=reinit_layers, checkpoint_seconds=checkpoint_seconds, data_root=data_root, text_column=text_column, text_b_column=text_b_column,
                  label_column=label_column)
    if out is None:
        raise UserError("--out is required: finetune writes a model and metrics.json there")
    from advkit import finetune as ft
    from advkit.results import RunDir

    from advkit import distributed

    rank = distributed.world()[0]  # under torchrun only rank 0 writes; the others must not refuse its folder
    run_dir = RunDir(out, "finetune", overwrite=overwrite or rank > 0, resume=resume)
    run_dir.check_writable()
    try:
        doc = ft.run(cfg, run_dir)
    finally:
        distributed.teardown()
    m = doc["metrics"]
    if rank > 0:
        return
    spread = f" ± {m['eval_accuracy_std']:.4f} over seeds {cfg.seeds}" if cfg.seeds else ""
    parts = (f" (cls {m['accuracy_cls']:.4f}, knn {m['accuracy_knn']:.4f}, lambda_inf {m['lambda_inf']})"
             if cfg.method == "knn" and not cfg.seeds else "")
    typer.echo(f"{cfg.method} on {cfg.dataset} ({m['train_examples']} examples, {m['train_seconds']} s): "
               f"{m['eval_split']} accuracy {m['eval_accuracy']:.4f}{spread}{parts} on {m['eval_examples']}; "
               f"results in {out}")


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
    attack: Optional[str] = typer.Option(None, help="pwws, deepwordbug, textfooler, bert-attack, bae (English); "
                                         "zh-pieces, zh-chars, zh-words, zh-glyph, zh-homophone (Chinese, attack-zh)."),
    attack_lm: Optional[str] = typer.Option(None, help="Local masked LM for bert-attack / bae; piece LM for zh-pieces."),
    attack_encoder: Optional[str] = typer.Option(None, help="Local sentence encoder in place of USE. [default: minilm-l6]"),
    query_budget: Optional[int] = typer.Option(None, help="Victim queries per example before giving up."),
    label_check: Optional[str] = typer.Option(None, help="Chinese attacks: lexicon | negation | none (see attack-zh). "
                                                         "[default: lexicon]"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted attack run in --out."),
    card: bool = typer.Option(False, "--card", help="Report card: clean accuracy, the language's attacks, backdoor checks."),
    trigger: Optional[str] = typer.Option(None, help='Backdoor check: sub-triggers, e.g. "cf bb" (with --target).'),
    target: Optional[int] = typer.Option(None, help="Backdoor check: the target label id."),
    scan: Optional[int] = typer.Option(None, help="Vocabulary-scan defence over this many tokens (0: off; card: 200)."),
    onion_lm: Optional[str] = typer.Option(None, help="ONION defence: filter inputs by this local masked LM's "
                                                      "pseudo-perplexity before the model sees them."),
    onion_threshold: Optional[float] = typer.Option(None, help="ONION: remove a word when dropping it lowers the "
                                                               "perplexity by more than this. [default: 0]"),
    out: Optional[Path] = OUT, recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT, text_column: Optional[str] = TEXT_COL,
    text_b_column: Optional[str] = TEXT_B_COL, label_column: Optional[str] = LABEL_COL,
):
    """Clean accuracy of a model on a split, its robustness under an attack, backdoor checks, or all in a --card.

    Example: advkit evaluate --model runs/ce --dataset sst2 --split test --limit 200 --attack pwws --out runs/pwws
    """
    _quiet(quiet)
    cfg = _config(configs.EvaluateConfig, recipe, model=model, dataset=dataset, split=split, limit=limit,
                  batch_size=batch_size, max_length=max_length, seed=seed, device=device, data_root=data_root,
                  text_column=text_column, text_b_column=text_b_column, label_column=label_column, attack=attack,
                  attack_lm=attack_lm, attack_encoder=attack_encoder, query_budget=query_budget,
                  label_check=label_check, card=card or None, trigger=trigger, target=target, scan=scan,
                  onion_lm=onion_lm, onion_threshold=onion_threshold)
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
        rate = "n/a" if m["attack_success_rate"] is None else f"{m['attack_success_rate']:.4f}"
        queries = "n/a" if m["avg_queries"] is None else f"{m['avg_queries']:.1f}"
        typer.echo(f"{cfg.attack} on {cfg.model} ({cfg.dataset}/{m['split']}, {m['examples']} examples): accuracy "
                   f"{m['accuracy_before']:.4f} -> {m['accuracy_under_attack']:.4f}, success rate {rate}, "
                   f"{queries} queries{where}")
    else:
        lfr = f", label flip rate {m['label_flip_rate']:.4f}" if "label_flip_rate" in m else ""
        typer.echo(f"{cfg.model} on {cfg.dataset}/{m['split']}: accuracy {m['accuracy']:.4f} on {m['examples']} "
                   f"examples{lfr}{where}")


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
def attack_zh(
    model: Optional[str] = typer.Option(None, help="The victim: a classifier folder or finetune run directory."),
    dataset: Optional[str] = typer.Option(None, help="A Chinese data set; pairs attack the first sentence. "
                                                      "[default: chnsenticorp]"),
    split: Optional[str] = typer.Option(None, help="[default: dev]"),
    limit: Optional[int] = typer.Option(None, help="Attack a fixed sample of this many examples."),
    lm: Optional[str] = typer.Option(None, help="Masked LM proposing substitutes. [default: piece-lm-zh for "
                                                "pieces, albert-tiny-zh for chars]"),
    substitutes: Optional[str] = typer.Option(None, help="pieces | chars | words | glyph | homophone. "
                                                         "[default: pieces]"),
    top_k: Optional[int] = typer.Option(None, help="Candidates per position. [default: 48]"),
    max_perturb: Optional[float] = typer.Option(None, help="Share of units that may change. [default: 0.4]"),
    max_queries: Optional[int] = typer.Option(None, help="Victim queries per example. [default: 2000]"),
    label_check: Optional[str] = typer.Option(None, help="Drop swaps that change the true label: lexicon (negation "
                                                         "+ the training split's class words) | negation | none. "
                                                         "[default: lexicon]"),
    fluency_lm: Optional[str] = typer.Option(None, help="Masked LM for pseudo-perplexity. [default: albert-tiny-zh]"),
    similarity_model: Optional[str] = typer.Option(None, help="Sentence encoder, or none. [default: m3e-small]"),
    batch_size: Optional[int] = typer.Option(None, help="[default: 32]"),
    max_length: Optional[int] = typer.Option(None, help="Victim tokens per text. [default: 128]"),
    seed: Optional[int] = typer.Option(None, help="[default: 1]"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda. [default: cpu]"),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in OUT from its records."),
    out: Optional[Path] = OUT, recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT, text_column: Optional[str] = TEXT_COL,
    text_b_column: Optional[str] = TEXT_B_COL, label_column: Optional[str] = LABEL_COL,
):
    """Chinese adversarial examples: greedy BERT-Attack search with sentence-piece substitutes.

    Example: advkit attack-zh --model runs/zh-ce --dataset chnsenticorp --limit 100 --out runs/attack-zh
    """
    _quiet(quiet)
    cfg = _config(configs.AttackZhConfig, recipe, model=model, dataset=dataset, split=split, limit=limit, lm=lm,
                  substitutes=substitutes, top_k=top_k, max_perturb=max_perturb, max_queries=max_queries,
                  label_check=label_check, fluency_lm=fluency_lm, similarity_model=similarity_model,
                  batch_size=batch_size, max_length=max_length, seed=seed, device=device, data_root=data_root, text_column=text_column,
                  text_b_column=text_b_column, label_column=label_column)
    if out is None:
        raise UserError("--out is required: attack-zh writes records.jsonl and metrics.json there")
    from advkit.attack_zh import run as attack_run
    from advkit.results import RunDir

    run_dir = RunDir(out, "attack-zh", overwrite=overwrite, resume=resume)
    run_dir.check_writable()
    m = attack_run.run(cfg, run_dir)["metrics"]
    num = lambda x, f=".4f": "n/a" if x is None else format(x, f)  # noqa: E731 (nothing attacked: no rate)
    typer.echo(f"{cfg.substitutes} on {cfg.dataset}/{cfg.split} ({m['examples']} examples): accuracy "
               f"{num(m['accuracy_before'])} -> {num(m['accuracy_after'])}, success rate "
               f"{num(m['attack_success_rate'])}, {num(m['avg_queries'], '.1f')} queries; results in {out}")


@app.command("build-piece-lm")
def build_piece_lm(
    corpus: Optional[str] = typer.Option(None, help="UTF-8 text, one sentence a line. "
                                                    "[default: training splits of the Chinese data sets]"),
    base: Optional[str] = typer.Option(None, help="Character masked LM to warm-start from. [default: albert-tiny-zh]"),
    tiny: bool = typer.Option(False, "--tiny", help="A toy size that builds in seconds (tests)."),
    vocab_size: Optional[int] = typer.Option(None, help="Pieces. [default: 16000]"),
    character_coverage: Optional[float] = typer.Option(None, help="[default: 0.9995]"),
    max_piece_length: Optional[int] = typer.Option(None, help="Characters per piece. [default: 4]"),
    corpus_limit: Optional[int] = typer.Option(None, help="Training lines kept."),
    heldout: Optional[int] = typer.Option(None, help="Held-out lines for the accuracy. [default: 2000]"),
    steps: Optional[int] = typer.Option(None, help="Masked-LM training steps. [default: 2000]"),
    batch_size: Optional[int] = typer.Option(None, help="[default: 64]"),
    max_length: Optional[int] = typer.Option(None, help="Pieces per training window. [default: 64]"),
    lr: Optional[float] = typer.Option(None, help="[default: 5e-4]"),
    seed: Optional[int] = typer.Option(None, help="[default: 1]"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (bf16 autocast). [default: cpu]"),
    out: Optional[Path] = typer.Option(None, "--out", help="Model folder. [default: <cache>/models/piece-lm-zh, "
                                                           "the alias piece-lm-zh]"),
    recipe: Optional[Path] = RECIPE, overwrite: bool = OVERWRITE, quiet: bool = QUIET,
    data_root: Optional[str] = DATA_ROOT,
):
    """Build the SentencePiece masked LM that attack-zh draws substitutes from.

    Example: advkit build-piece-lm --steps 300 --out runs/piece-lm
    """
    _quiet(quiet)
    cfg = _config(configs.BuildPieceLmConfig, recipe, corpus=corpus, base=base, tiny=tiny or None,
                  vocab_size=vocab_size, character_coverage=character_coverage, max_piece_length=max_piece_length,
                  corpus_limit=corpus_limit, heldout=heldout, steps=steps, batch_size=batch_size,
                  max_length=max_length, lr=lr, seed=seed, device=device, data_root=data_root)
    from advkit.attack_zh import piece_lm
    from advkit.results import RunDir

    out = out or piece_lm.default_folder()
    run_dir = RunDir(out, "build-piece-lm", overwrite=overwrite)
    run_dir.check_writable()
    m = piece_lm.run(cfg, run_dir)["metrics"]
    acc = m["heldout_masked_piece_accuracy"]
    typer.echo(f"piece LM ({m['vocab_size']} pieces, {m['steps']} steps, {m['total_seconds']:.0f} s): held-out "
               f"masked-piece accuracy {'n/a' if acc is None else f'{acc:.4f}'}; model in {out}")


@app.command()
def table(
    runs: list[Path] = typer.Argument(..., help="Run directories (or metrics.json files)."),
    rows: str = typer.Option("run", help="Key labelling the rows: 'run' (folder name), a config or metric name, or a dotted path."),
    cols: str = typer.Option(..., help="Comma list of metric names; with --value, the key whose values label the columns."),
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
        from advkit.results import atomic_write

        try:
            atomic_write(out, text)
        except OSError as e:  # a missing folder, or a file where a folder should be
            raise UserError(f"--out {out}: cannot write: {e.strerror}") from None
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
        out = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--out"), None)
        resumable = len(sys.argv) > 1 and sys.argv[1] in ("evaluate", "attack-zh", "finetune")
        hint = f"; finished work is kept in {out}: rerun the same command with --resume" if out and resumable else ""
        print(f"interrupted{hint}", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
