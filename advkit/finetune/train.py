"""Fine-tune a pre-trained encoder with a fresh classification head: CE, SCL, MoCo, KNN-BERT or AT.

Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*, arXiv 2110.02523 (2021),
and its baselines (METHODS.md §1). Each method's training step is its `advkit.finetune.objective`; `knn`
then builds a KNN datastore of the training split, interpolated with the head by lambda_inf (the vote and
the combined predictor live in `advkit.knn_bert`). `--epochs 0` (knn only) trains nothing: the KNN vote
over the pre-trained encoder's pooled vectors, the control that shows what pre-training alone gives.

Every method's linear head reads the same pooled vector as the contrastive space and the KNN
(`--pooling`; `advkit.victim.head_forward`). The momentum defaults to one derived from the
run's steps (`knn.derived_momentum`) and the queue is never larger than the training set; both
values used are in metrics.json. The queue holds each key's example id, so that no query is
paired with a (stale) key of its own example.

AdamW with a linear schedule and warm-up; batches padded to their longest member. The loop
reads top to bottom (nanoGPT's habit). Positives come from the queue, into which each step
enqueues its batch's keys (MoCo), so a step costs about one extra forward pass; the
reference's per-query sampling is `positives_per_query`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import time
from pathlib import Path

from advkit import data, distributed, hf, models
from advkit.finetune.config import FinetuneConfig
from advkit.finetune.objective import Objective
from advkit.config import as_dict
from advkit.errors import UserError
from advkit.metrics import clean_accuracy
from advkit.progress import track
from advkit.results import RunDir
from advkit.optim import adamw_linear, clipped_step
from advkit.seeds import seed_everything

SELECTION_FRACTION = 0.1  # of train, held out to choose lambda_inf when dev is the reported split
SELECTION_LIMIT = 500  # dev examples used to choose lambda_inf (a fixed sample)
CHECKPOINT = "checkpoint.pt"  # OUT/checkpoint.pt while training; removed when the run finishes

__all__ = ["main", "run", "load_splits"]


def few_shot(examples: list, shots: int, seed: int) -> list:
    """K examples of each class, drawn with the seed, in file order."""
    by_label: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    short = {y: len(ix) for y, ix in by_label.items() if len(ix) < shots}
    if short:
        raise UserError(f"--shots {shots}: some classes have fewer training examples ({short})")
    rng = random.Random(seed)
    keep = sorted(i for y in sorted(by_label) for i in rng.sample(by_label[y], shots))
    return [examples[i] for i in keep]


def load_splits(cfg: FinetuneConfig):
    opts = dict(root=cfg.data_root, text_column=cfg.text_column, text_b_column=cfg.text_b_column,
                label_column=cfg.label_column)
    train = data.load(cfg.dataset, cfg.train_split, **opts)
    dev = data.load(cfg.dataset, cfg.eval_split, **opts)
    for split in (train, dev):
        if not split.labelled:
            raise UserError(f"{cfg.dataset}: split '{split.split}' is unlabelled; choose a labelled split")
    train.examples = data.sample(train.examples, cfg.train_limit, seed=cfg.seed)
    if cfg.shots is not None:
        train.examples = few_shot(train.examples, cfg.shots, cfg.seed)
    dev.examples = data.sample(dev.examples, cfg.limit)
    return train, dev


def selection_split(cfg: FinetuneConfig, train):
    """(train examples, selection examples, where they come from) for `--lambda-inf auto` and for
    `--patience` (the head's accuracy after each epoch).

    The reported split is never used for selection: dev when another split is reported, else a
    seeded, per-class 10 % of train held out from training."""
    if not (cfg.method == "knn" and cfg.lambda_inf == "auto") and cfg.patience is None:
        return train.examples, None, None
    spec = data.REGISTRY.get(cfg.dataset)
    dev_file = spec.splits.get("dev") if spec is not None else None
    if cfg.eval_split != "dev" and dev_file is not None and dev_file.label is not None:
        dev = data.load(cfg.dataset, "dev", root=cfg.data_root)
        chosen = data.sample(dev.examples, SELECTION_LIMIT)
        return train.examples, chosen, f"dev ({len(chosen)} of {len(dev.examples)} examples)"
    rng = random.Random(cfg.seed)
    by_label: dict[int, list[int]] = {}
    for i, e in enumerate(train.examples):
        by_label.setdefault(e.label, []).append(i)
    held = set()
    for y in sorted(by_label):
        ix = by_label[y]
        if len(ix) >= 2:
            held.update(rng.sample(ix, max(1, round(SELECTION_FRACTION * len(ix)))))
    if not held:
        raise UserError("--lambda-inf auto and --patience: too few training examples to hold some out for selection")
    kept = [e for i, e in enumerate(train.examples) if i not in held]
    chosen = [e for i, e in enumerate(train.examples) if i in held]
    why = "the eval split is dev" if cfg.eval_split == "dev" else "no labelled dev split"
    return kept, chosen, f"held-out {SELECTION_FRACTION:.0%} of train ({len(chosen)} examples, not trained on; {why})"


def main(cfg: FinetuneConfig, out: Path, overwrite: bool = False, resume: bool = False) -> dict | None:
    """`advkit finetune`, alone or as one rank under torchrun: only rank 0 writes and returns the metrics."""
    return distributed.main("finetune", out, overwrite, resume, lambda run_dir: run(cfg, run_dir))


def run(cfg: FinetuneConfig, out: RunDir) -> dict:
    """Train, save, evaluate; with `seeds`, once per seed (OUT/seed-S) and mean/std in OUT."""
    if out.resume and (out.path / "metrics.json").is_file():
        raise UserError(f"--resume: {out.path} is a finished run (metrics.json exists); nothing to resume")
    if cfg.seeds:
        return run_seeds(cfg, out)
    return train_and_evaluate(cfg, out)


def converged(curve: list[float], patience: int) -> bool:
    """No epoch of the last `patience` beat the best accuracy before them."""
    return len(curve) > patience and max(curve[-patience:]) <= max(curve[:-patience])


def train_and_evaluate(cfg: FinetuneConfig, out: RunDir) -> dict:
    train, dev = load_splits(cfg)  # before importing torch: a bad data file fails at once
    import torch

    train_examples, selection, selected_on = selection_split(cfg, train)
    curve = selection if cfg.patience is not None else None
    rank, world = distributed.setup(cfg.device)
    seed_everything(cfg.seed)  # the same seed in every process: identical initial replicas
    classifier, tokenizer = load_classifier(cfg, train.labels)
    if rank == 0:
        out.create(as_dict(cfg))

    # Each process takes every world-th batch; the epoch is cut to a multiple of the world size
    # so that all processes take the same number of steps (a lone extra step would hang).
    steps_per_epoch = math.ceil(len(train_examples) / cfg.batch_size) // world
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_examples)} training examples make fewer batches than the {world} processes")
    total = steps_per_epoch * cfg.epochs
    device = torch.device(cfg.device)
    objective = Objective.build(cfg, classifier, tokenizer, train_examples, total, device)
    net = objective.net
    trained = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    optimizer, schedule = adamw_linear(trained, cfg.lr, cfg.weight_decay, max(total, 1), cfg.warmup_ratio)
    order = torch.Generator().manual_seed(cfg.seed)
    state = {"epoch": 0, "step": 0, "order": order.get_state(), "losses": [], "contrastive_losses": [],
             "train_seconds": 0.0, "dev_curve": [], "adversarial": {}}
    # theta_0 of f_q + g_q (= f_k + g_k at the start), to measure how far the key encoder moves; taken
    # before a checkpoint is loaded, so that a resumed run measures from the same seeded start.
    start = None
    if net.momentum_contrast and rank == 0:
        start = [q.detach().float().cpu().clone() for q, _ in net._pairs()]
    checkpoint = out.path / CHECKPOINT
    resumed_at = None
    if out.resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, net, optimizer, schedule, objective.draw, device, rank, world)
        resumed_at = state["epoch"] * steps_per_epoch + state["step"]
    losses, contrastive_losses = state["losses"], state["contrastive_losses"]
    dev_curve = state.get("dev_curve", [])  # the head's dev accuracy after each epoch (--patience)
    objective.adversarial = state.setdefault("adversarial", {})  # at: per epoch, examples attacked, flipped, queries
    started, saved = time.time() - state["train_seconds"], time.time()
    for epoch in range(state["epoch"], cfg.epochs):
        if epoch == state["epoch"]:
            order.set_state(state["order"])  # the epoch's order again, then skip the steps already taken
        epoch_order = order.get_state()
        perm = torch.randperm(len(train_examples), generator=order).tolist()
        batches = [perm[i : i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
        batches = batches[: steps_per_epoch * world][rank::world]
        first = state["step"] if epoch == state["epoch"] else 0
        for step in track(range(first, len(batches)), f"epoch {epoch + 1}/{cfg.epochs}"):
            idx = batches[step]
            batch = [train_examples[i] for i in idx]
            enc = hf.encode_examples(tokenizer, batch, cfg.max_length, device)
            labels = torch.tensor([e.label for e in batch], device=device)
            loss, con, keys = objective.loss(idx, enc, labels, epoch)
            if con is not None:
                contrastive_losses.append(con.item())
            loss.backward()
            if world > 1:
                distributed.average_gradients(p for _, p in trained)
            clipped_step([p for _, p in trained], optimizer, schedule)
            if net.momentum_contrast:  # every process's keys and their example ids (all-gathered)
                net.enqueue(keys, labels, torch.tensor(idx, device=device))
            losses.append(loss.item())
            last = epoch == cfg.epochs - 1 and step == len(batches) - 1
            due = cfg.checkpoint_seconds is not None and not last and time.time() - saved >= cfg.checkpoint_seconds
            if distributed.agree(due):  # rank 0's clock decides, so every process saves at the same step
                begun = time.time()
                save_checkpoint(checkpoint, net, optimizer, schedule, objective.draw, {
                    "epoch": epoch, "step": step + 1, "order": epoch_order, "losses": losses, "world": world,
                    "contrastive_losses": contrastive_losses, "train_seconds": begun - started,
                    "dev_curve": dev_curve, "adversarial": objective.adversarial}, rank)
                saved = time.time()
                started += saved - begun  # train_seconds counts training, not checkpoint writes
        if curve is not None and len(dev_curve) == epoch:  # not yet measured (a resumed run may have)
            if rank == 0:
                begun = time.time()
                dev_curve.append(dev_accuracy(cfg, classifier, tokenizer, curve))
                net.train()
                started += time.time() - begun  # nor does the dev measurement
            if distributed.agree(rank == 0 and converged(dev_curve, cfg.patience)):
                break
    epochs_trained = epoch + 1 if cfg.epochs else 0
    train_seconds = time.time() - started
    if rank > 0:  # rank 0 evaluates and writes; the others are done
        return {"command": "finetune", "metrics": {}}

    training = {
        "train_examples": len(train_examples),
        "shots": cfg.shots,
        "train_steps": steps_per_epoch * epochs_trained,
        "epochs_trained": epochs_trained,
        **({"patience": cfg.patience, "dev_accuracy_per_epoch": dev_curve, "dev_accuracy_on": selected_on,
            "converged": converged(dev_curve, cfg.patience)} if curve is not None else {}),
        "pooling": cfg.pooling,  # what the head, the contrastive space and the KNN read
        **objective.metrics(start),
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last_epoch": sum(losses[-steps_per_epoch:]) / steps_per_epoch if losses else None,
        **({"contrastive_loss_last_epoch": sum(contrastive_losses[-steps_per_epoch:]) / steps_per_epoch}
           if contrastive_losses else {}),
        "train_seconds": round(train_seconds, 2),
        "processes": world,
        "resumed_at_step": resumed_at,  # None: trained from the start in one go
    }
    return save_and_evaluate(cfg, out, objective, dev, selection, selected_on, training)


def save_and_evaluate(cfg: FinetuneConfig, out: RunDir, objective: Objective, dev, selection, selected_on,
                      training: dict) -> dict:
    """Rank 0, after training: save the model (--save-model), evaluate the head (KNN-BERT: the KNN vote
    and the combined predictor too), write metrics.json with `training`'s facts, drop the checkpoint."""
    net, classifier, tokenizer = objective.net, objective.net.classifier, objective.tokenizer
    net.eval()
    if cfg.save_model:
        hf.save_pretrained(out.path / "model", classifier, tokenizer)
    metrics = {"method": cfg.method}
    if cfg.method == "knn":
        metrics.update(evaluate_knn(cfg, net, tokenizer, objective.examples, dev, selection, selected_on, out))
    else:
        metrics.update(evaluate_head(cfg, classifier, tokenizer, dev, out))
    metrics.update({"eval_split": dev.split, "eval_examples": len(dev.examples), **training})
    doc = out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
    checkpoint = out.path / CHECKPOINT
    for stale in (checkpoint, *checkpoint.parent.glob(f"{checkpoint.stem}-rank*.pt")):
        stale.unlink(missing_ok=True)  # the run is finished: the model and metrics replace it
    return doc


def load_classifier(cfg: FinetuneConfig, labels: list[str]):
    """The pre-trained encoder with a fresh head over `labels`, reading the pooling the method trains."""
    from advkit.victim import POOLING_KEY, check_head

    classifier, tokenizer, _ = models.load_classifier(cfg.model, num_labels=len(labels), label_names=labels)
    if cfg.method != "ce" and cfg.pooling == "pooler" and getattr(classifier.base_model, "pooler", None) is None:
        raise UserError(f"model '{cfg.model}' has no pooler: pass --pooling cls or --pooling mean")
    check_head(classifier, cfg.pooling)
    setattr(classifier.config, POOLING_KEY, cfg.pooling)  # saved in OUT/model/config.json: what the head reads
    if cfg.reinit_layers:
        reinit_top_layers(classifier, cfg.reinit_layers)
    return classifier, tokenizer


def dev_accuracy(cfg: FinetuneConfig, classifier, tokenizer, examples) -> float:
    """The linear head's accuracy on the examples that judge --patience."""
    from advkit.victim import PooledVictim

    head = PooledVictim(classifier, tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device,
                        precision=cfg.precision)
    return clean_accuracy(head, examples)["accuracy"]


def evaluate_head(cfg: FinetuneConfig, classifier, tokenizer, dev, out: RunDir) -> dict:
    """CE, SCL, MoCo: the linear head's accuracy on the evaluation split, with per-example records
    (the tables' paired tests read them)."""
    from advkit.victim import PooledVictim

    victim = PooledVictim(classifier, tokenizer, max_length=cfg.max_length, batch_size=64, device=cfg.device,
                          precision=cfg.precision)
    result = clean_accuracy(victim, dev.examples)
    out.write_records(result["records"])
    return {"accuracy_cls": result["accuracy"], "eval_accuracy": result["accuracy"]}


def reinit_top_layers(classifier, n: int) -> None:
    """Re-initialise the top n encoder layers (a defence against weight poisoning, METHODS.md §2),
    with the model's own initialiser, under the run's seed."""
    layers = getattr(getattr(classifier.base_model, "encoder", None), "layer", None)
    if layers is None:
        raise UserError(f"--reinit-layers: {type(classifier).__name__} has no encoder.layer list")
    if n > len(layers):
        raise UserError(f"--reinit-layers {n}: the model has {len(layers)} layers")
    for layer in layers[len(layers) - n :]:
        layer.apply(classifier._init_weights)


def _rng_state(draw: random.Random) -> dict:
    import torch

    state = {"torch_rng": torch.get_rng_state(), "draw": draw.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state()  # dropout and MoCo's draws on the GPU
    return state


def save_checkpoint(path: Path, net, optimizer, schedule, draw: random.Random, state: dict, rank: int = 0) -> None:
    """Everything a resumed run needs to take the same next step: weights and buffers (the queue),
    optimiser and schedule, the epoch's order and the position in it, and every RNG. Under torchrun
    rank 0 writes the shared state and each process its own RNGs (they differ: other batches)."""
    import torch

    from advkit.distributed import barrier

    def write(target: Path, payload: dict) -> None:
        tmp = target.with_name(target.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(target)  # a kill during the save leaves the previous file whole

    tag = f"{state['epoch']}-{state['step']}"  # a kill between two writes must not pair RNGs of another step
    if rank > 0:
        write(path.with_name(f"{path.stem}-rank{rank}-{tag}.pt"), _rng_state(draw))
    barrier()  # every rank's RNGs are on disk before the checkpoint that refers to them
    if rank == 0:
        write(path, {**state, "net": net.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict(), **_rng_state(draw)})
    barrier()
    if rank > 0:
        for old in path.parent.glob(f"{path.stem}-rank{rank}-*.pt"):
            if old.name != f"{path.stem}-rank{rank}-{tag}.pt":
                old.unlink(missing_ok=True)


def load_checkpoint(path: Path, net, optimizer, schedule, draw: random.Random, device, rank: int = 0,
                    world: int = 1) -> dict:
    import torch

    def read(target: Path) -> dict:
        try:  # tensors and plain values only; on the CPU first (RNG states must stay there)
            return torch.load(target, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file, named in one line
            raise UserError(f"--resume: {target} is not a readable checkpoint ({type(e).__name__})") from None

    ckpt = read(path)
    if ckpt.get("world", 1) != world:
        raise UserError(f"--resume: {path} was written by {ckpt.get('world', 1)} process(es), this run has {world}; "
                        "resume with the same number")
    rng = read(path.with_name(f"{path.stem}-rank{rank}-{ckpt['epoch']}-{ckpt['step']}.pt")) if rank > 0 else ckpt
    net.load_state_dict(ckpt.pop("net"))
    optimizer.load_state_dict(ckpt.pop("optimizer"))  # its tensors follow the parameters' device
    schedule.load_state_dict(ckpt.pop("schedule"))
    torch.set_rng_state(rng["torch_rng"])
    if "cuda_rng" in rng and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(rng["cuda_rng"])
    version, internal, gauss = rng["draw"]
    draw.setstate((version, tuple(internal), gauss))
    return ckpt


def evaluate_knn(cfg, net, tokenizer, train_examples, dev, selection, selected_on, out: RunDir) -> dict:
    """Datastore, lambda_inf (chosen off the reported split), three accuracies, the plot."""
    import numpy as np
    import torch

    from advkit.knn_bert import predictor as knn_predictor
    from advkit.knn_bert.datastore import Datastore
    from advkit.knn_bert.predictor import KnnPredictor, combine

    # --epochs 0 (the control): no projection was trained, the KNN space is the pooled vector itself.
    projection = net.projection if net.momentum_contrast else None
    predictor = KnnPredictor(net.classifier, tokenizer, projection, None, pooling=cfg.pooling, knn_k=cfg.knn_k,
                             knn_weighting=cfg.knn_weighting, knn_tau=cfg.knn_tau,
                             lambda_inf=0.1 if cfg.lambda_inf == "auto" else cfg.lambda_inf,
                             max_length=cfg.max_length, batch_size=64, device=cfg.device, precision=cfg.precision)
    if cfg.datastore == "queue":
        keys, labels = net.filled_queue()
    else:
        keys = torch.from_numpy(predictor.represent(*texts(train_examples))[1])
        labels = torch.tensor([e.label for e in train_examples])
    predictor.datastore = Datastore(keys, labels, net.classifier.config.num_labels)
    found = {}
    if selection is not None:
        p_cls, p_knn, _ = predictor.parts(*texts(selection))
        predictor.lambda_inf, scores = knn_predictor.select_lambda_inf(p_cls, p_knn, [e.label for e in selection])
        found = {"lambda_inf_selected_on": selected_on, "selection_examples": len(selection), "selection_accuracy": {str(k): v for k, v in scores.items()}}
    p_cls, p_knn, q = predictor.parts(*texts(dev.examples))
    gold = np.array([e.label for e in dev.examples])
    accuracy = {name: float((p.argmax(1) == gold).mean()) for name, p in
                (("cls", p_cls), ("knn", p_knn), ("combined", combine(p_cls, p_knn, predictor.lambda_inf)))}
    predictor.queries = 0
    combined = combine(p_cls, p_knn, predictor.lambda_inf)
    out.write_records([{"index": i, "text": e.text, **({"text_b": e.text_b} if e.text_b else {}), "label": e.label,
                        "prediction": int(c), "prediction_cls": int(a), "prediction_knn": int(b)}
                       for i, (e, a, b, c) in enumerate(zip(dev.examples, p_cls.argmax(1), p_knn.argmax(1),
                                                            combined.argmax(1)))])
    if cfg.save_model:
        predictor.save(out.path)
    plot_representations(q, gold, dev.labels, out.path / "representations.png",
                         f"{cfg.model} knn on {cfg.dataset}/{dev.split}: projections (PCA)")
    return {"accuracy_cls": accuracy["cls"], "accuracy_knn": accuracy["knn"],
            "accuracy_combined": accuracy["combined"], "eval_accuracy": accuracy["combined"],
            "lambda_inf": predictor.lambda_inf, **found, "datastore": cfg.datastore,
            "datastore_size": len(predictor.datastore), "knn_k": cfg.knn_k, "knn_weighting": cfg.knn_weighting}


def texts(examples):
    return [e.text for e in examples], ([e.text_b for e in examples] if examples and examples[0].text_b else None)


def plot_representations(vectors, labels, label_names, path: Path, title: str) -> None:
    """A 2-D PCA of the vectors, coloured by label, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.asarray(vectors, dtype="float64")
    x = x - x.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T if len(vt) >= 2 else np.c_[x @ vt[:1].T, np.zeros(len(x))]
    explained = (s[:2] ** 2 / max((s**2).sum(), 1e-12)).tolist() + [0.0]
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for y in sorted(set(labels.tolist())):
        pick = labels == y
        ax.scatter(xy[pick, 0], xy[pick, 1], s=8, alpha=0.7, label=str(label_names[y]) if y < len(label_names) else y)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)")
    ax.legend(markerscale=2, fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)


def run_seeds(cfg: FinetuneConfig, out: RunDir) -> dict:
    """One run per seed under OUT/seed-S; OUT/metrics.json holds each and their mean and std."""
    seeds = [int(s) for s in str(cfg.seeds).split(",") if s.strip()]
    load_splits(dataclasses.replace(cfg, seed=seeds[0]))  # fail on bad input before making folders
    rank = distributed.world()[0]
    if rank == 0:
        out.create(as_dict(cfg))
    runs = {}
    for seed in seeds:
        folder = out.path / f"seed-{seed}"
        if out.resume and (folder / "metrics.json").is_file():  # finished before the interruption
            runs[seed] = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["metrics"]
            continue
        started = out.resume and folder.is_dir() and any(folder.iterdir())
        sub = RunDir(folder, "finetune", overwrite=not started, resume=started)
        runs[seed] = train_and_evaluate(dataclasses.replace(cfg, seed=seed, seeds=None), sub)["metrics"]
    if rank > 0:
        return {"command": "finetune", "metrics": {}}
    first = runs[seeds[0]]
    metrics = {"method": cfg.method, "seeds": seeds, "shots": cfg.shots,
               "std": "sample standard deviation (n - 1) over seeds"}
    for key in ("eval_accuracy", "accuracy_cls", "accuracy_knn", "accuracy_combined", "lambda_inf"):
        if key in first:
            values = [runs[s][key] for s in seeds]
            metrics[f"{key}_mean"] = statistics.fmean(values)
            metrics[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    metrics.update({
        "eval_accuracy": metrics["eval_accuracy_mean"],
        "eval_split": first["eval_split"],
        "eval_examples": first["eval_examples"],
        "train_examples": first["train_examples"],
        "train_seconds": round(sum(runs[s]["train_seconds"] for s in seeds), 2),
        "per_seed": {str(s): runs[s] for s in seeds},
    })
    return out.write_metrics(metrics, as_dict(cfg), seed=None, device=cfg.device)

