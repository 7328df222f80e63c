"""KNN-BERT fine-tuning: losses, queue, momentum update, datastore, predictor, CLI runs."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advkit.knn_bert.datastore import Datastore
from advkit.knn_bert.losses import MoCoLoss, SupervisedContrastiveLoss, SupervisedMomentumContrastiveLoss
from advkit.knn_bert.predictor import select_lambda_inf
from conftest import advkit, read_json
from advkit.victim import Victim

# ---- losses -------------------------------------------------------------------------------------


def test_scl_pulls_same_class_together():
    """Moving a same-class pair closer lowers SCL, and a gradient step on SCL brings it closer."""
    labels = torch.tensor([0, 0, 1, 1])
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.2], [0.2, -1.0]])
    loss = SupervisedContrastiveLoss(tau=0.3)
    closer = z.clone()
    closer[1] = torch.tensor([0.6, 0.8])  # rotated towards z[0], its class mate
    assert loss(closer, labels) < loss(z, labels)

    z = z.clone().requires_grad_(True)
    loss(z, labels).backward()
    stepped = (z - 0.1 * z.grad).detach()
    cos = lambda a, i, j: F.cosine_similarity(a[i], a[j], dim=0).item()  # noqa: E731
    assert cos(stepped, 0, 1) > cos(z.detach(), 0, 1)
    assert cos(stepped, 2, 3) > cos(z.detach(), 2, 3)


def test_scl_value_by_hand():
    # Anchors 0 and 1 are positives of each other; anchor 2 has none and is left out.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    # anchor 0: sims to 1, 2 are 0, -1; anchor 1: sims to 0, 2 are 0, 0.
    l0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1)))
    l1 = -math.log(math.exp(0) / (math.exp(0) + math.exp(0)))
    assert SupervisedContrastiveLoss(tau=1.0)(z, labels).item() == pytest.approx((l0 + l1) / 2, abs=1e-6)


def test_momentum_contrastive_loss_by_hand():
    q = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.6, 0.8]])
    queue_labels = torch.tensor([0, 1, 0, -1, 0])  # slot 3 is empty
    # positives of label 0: slots 0 (s=1), 4 (s=0.6), 2 (s=-1); top_k=1 keeps slot 0, end_k=1 keeps slot 2.
    # negative: slot 1 (s=0). tau = 0.5.
    tau = 0.5
    ell = lambda s: -math.log(math.exp(s / tau) / (math.exp(s / tau) + math.exp(0 / tau)))  # noqa: E731
    loss = SupervisedMomentumContrastiveLoss(tau=tau, top_k=1, end_k=1)
    got = loss(q, torch.tensor([0]), queue, queue_labels).item()
    assert got == pytest.approx((ell(1.0) + ell(-1.0)) / 2, abs=1e-6)
    # top_k=5 keeps every positive once (no double counting with end_k).
    got = SupervisedMomentumContrastiveLoss(tau=tau, top_k=5, end_k=1)(q, torch.tensor([0]), queue, queue_labels)
    assert got.item() == pytest.approx((ell(1.0) + ell(0.6) + ell(-1.0)) / 3, abs=1e-6)


def test_positive_and_negative_selection():
    loss = SupervisedMomentumContrastiveLoss(top_k=2, end_k=1)
    sims = torch.tensor([[0.9, 0.1, 0.5, -0.3, 0.7, 0.0]])
    candidate = torch.tensor([[True, False, True, True, True, False]])
    keep = loss.select_positives(sims, candidate)
    assert keep.tolist() == [[True, False, False, True, True, False]]  # top 2: 0.9, 0.7; hardest: -0.3
    # A query without negatives (every filled slot has its label) adds nothing.
    q = F.normalize(torch.randn(2, 4), dim=1)
    queue = F.normalize(torch.randn(6, 4), dim=1)
    only_zero = torch.tensor([0, 0, 0, -1, -1, -1])
    assert loss(q, torch.tensor([0, 0]), queue, only_zero).item() == 0.0
    # Empty slots are neither positives nor negatives: filling them with label -1 changes nothing.
    labels, queue_labels = torch.tensor([0, 1]), torch.tensor([0, 1, 0, 1, -1, -1])
    full = loss(q, labels, queue, queue_labels)
    assert loss(q, labels, queue[:4], queue_labels[:4]).item() == pytest.approx(full.item(), abs=1e-6)


def test_moco_keeps_one_same_label_positive():
    sims = torch.randn(8, 20)
    candidate = torch.rand(8, 20) > 0.5
    candidate[3] = False
    keep = MoCoLoss().select_positives(sims, candidate)
    assert (keep & ~candidate).sum() == 0
    assert keep.sum(1).tolist() == [1 if candidate[i].any() else 0 for i in range(8)]


# ---- queue and momentum encoder ----------------------------------------------------------------


@pytest.fixture(scope="module")
def knn_bert(tiny_en):
    from advkit import models
    from advkit.knn_bert.encoder import FinetuneModel

    classifier, tokenizer, _ = models.load_classifier(str(tiny_en), num_labels=2)
    return FinetuneModel(classifier, "mean", momentum_contrast=True, projection_dim=4, queue_size=5, momentum=0.9), tokenizer


def test_queue_enqueue_and_wrap(knn_bert):
    net, _ = knn_bert
    net.queue.zero_()
    net.queue_labels.fill_(-1)
    net.queue_ids.fill_(-1)
    net.queue_ptr.zero_()
    a = F.normalize(torch.randn(3, 4), dim=1)
    net.enqueue(a, torch.tensor([0, 1, 0]), torch.tensor([7, 8, 9]))
    assert int(net.queue_ptr) == 3 and net.queue_labels.tolist() == [0, 1, 0, -1, -1]
    assert net.queue_ids.tolist() == [7, 8, 9, -1, -1]
    assert len(net.filled_queue()[0]) == 3
    b = F.normalize(torch.randn(3, 4), dim=1)
    net.enqueue(b, torch.tensor([1, 1, 1]))  # slots 3, 4, then wraps to 0; no ids: -1 (unknown)
    assert int(net.queue_ptr) == 1
    assert net.queue_labels.tolist() == [1, 1, 0, 1, 1]
    assert net.queue_ids.tolist() == [-1, 8, 9, -1, -1]
    assert torch.equal(net.queue[0], b[2]) and torch.equal(net.queue[3], b[0]) and torch.equal(net.queue[1], a[1])
    assert {"queue", "queue_labels", "queue_ids", "queue_ptr"} <= set(dict(net.named_buffers()))


def test_momentum_update_is_ema(knn_bert):
    net, _ = knn_bert
    pairs = list(net._pairs())
    assert len(pairs) == len(list(net.classifier.base_model.parameters())) + len(list(net.projection.parameters()))
    with torch.no_grad():
        for q, k in pairs:
            q.normal_()
            k.normal_()
    before = [(q.clone(), k.clone()) for q, k in pairs]
    net.momentum_update()
    for (q0, k0), (q, k) in zip(before, pairs):
        assert torch.allclose(k, 0.9 * k0 + 0.1 * q0, atol=1e-6)
        assert torch.equal(q, q0)  # the query encoder is untouched
    assert all(not p.requires_grad for p in net.momentum_encoder.parameters())


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_pooler_pooling_is_the_models_pooled_output(arch):
    """ALBERT's pooler is a bare Linear (tanh applied outside it); applied to every position it gave a
    (B, L, H) 'representation' and the KNN loss crashed on albert-tiny-zh."""
    from transformers import AlbertConfig, AlbertModel, BertConfig, BertModel

    from advkit.hf import pool

    torch.manual_seed(0)
    cfg = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    model = (BertModel(BertConfig(**cfg)) if arch == "bert" else AlbertModel(AlbertConfig(embedding_size=8, **cfg))).eval()
    ids = torch.randint(5, 50, (3, 7))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
        rep = pool(out.last_hidden_state, mask, "pooler", model)
    assert rep.shape == (3, 16)
    assert torch.allclose(rep, out.pooler_output, atol=1e-6)


# ---- datastore and voting ----------------------------------------------------------------------


def test_faiss_and_torch_find_the_same_neighbours():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(3000, 16, generator=g)
    labels = torch.randint(0, 3, (3000,), generator=g)
    queries = torch.randn(40, 16, generator=g)
    exact = Datastore(keys, labels, 3, backend="torch")
    faiss = Datastore(keys, labels, 3, backend="faiss")
    s1, i1 = exact.search(queries, 10)
    s2, i2 = faiss.search(queries, 10)
    assert torch.equal(i1, i2)
    assert torch.allclose(s1, s2, atol=1e-5)
    assert torch.allclose(exact.predict(queries, 10, "temperature"), faiss.predict(queries, 10, "temperature"),
                          atol=1e-5)


def test_knn_voting_by_hand(tmp_path):
    keys = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    store = Datastore(keys, torch.tensor([0, 1, 1, 0]), num_labels=2)
    q = torch.tensor([[1.0, 0.0]])  # sims 1.0 (label 0), 0.8 (1), 0.0 (1), -1 (0)
    assert store.predict(q, 3, "uniform").tolist() == [[pytest.approx(1 / 3), pytest.approx(2 / 3)]]
    w = [math.exp(1.0 / 0.5), math.exp(0.8 / 0.5), math.exp(0.0 / 0.5)]
    p0 = w[0] / sum(w)
    assert store.predict(q, 3, "temperature", tau=0.5)[0, 0].item() == pytest.approx(p0, abs=1e-6)
    store.save(tmp_path / "d.safetensors")
    back = Datastore.load(tmp_path / "d.safetensors")
    assert back.num_labels == 2 and torch.equal(back.keys, store.keys) and torch.equal(back.labels, store.labels)


def test_lambda_inf_selection():
    # Example 1 needs lambda >= 0.2 (the KNN is right), example 0 needs lambda < 0.45 (the head is right):
    # 0.2, 0.3 and 0.4 get all three; ties go to the value nearest the reference's 0.1.
    p_cls = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    p_knn = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    best, scores = select_lambda_inf(p_cls, p_knn, [0, 1, 1])
    assert [lam for lam, acc in scores.items() if acc == 1.0] == [0.2, 0.3, 0.4]
    assert best == 0.2
    assert scores[0.0] == pytest.approx(2 / 3) and scores[1.0] == pytest.approx(2 / 3)


# ---- end to end on the CLI ---------------------------------------------------------------------

TINY = ["--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "48", "--limit", "24", "--epochs", "1",
        "--batch-size", "16", "--max-length", "32", "--quiet", "--top-k", "10", "--queue-size", "64",
        "--pooling", "mean"]
# The random tiny model maps every text to nearly the same pooler output; mean pooling keeps them apart.


@pytest.fixture(scope="module")
def knn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("knn") / "run"
    r = advkit("finetune", "--method", "knn", *TINY, "--seed", "3", "--out", out)
    assert r.code == 0, r.stderr
    return out


def test_knn_run_directory_and_predictor(knn_run):
    from advkit.knn_bert.predictor import KnnPredictor
    from advkit.predictor import load_predictor
    from advkit.victim import PooledVictim

    for name in ("model/model.safetensors", "model/config.json", "datastore.safetensors", "projection.safetensors",
                 "knn.json", "representations.png", "metrics.json"):
        assert (knn_run / name).is_file(), name
    m = read_json(knn_run / "metrics.json")["metrics"]
    for key in ("accuracy_cls", "accuracy_knn", "accuracy_combined"):
        assert 0.0 <= m[key] <= 1.0
    assert m["datastore_size"] == 48 and m["eval_examples"] == 24
    assert (knn_run / "representations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Batch size 64 as in training's evaluation: other paddings move near-tied neighbours of a random model.
    predictor = load_predictor(str(knn_run), max_length=32, batch_size=64)
    assert isinstance(predictor, KnnPredictor) and predictor.num_labels == 2 and predictor.queries == 0
    from advkit import data

    dev = data.sample(data.load("sst2", "dev").examples, 24)
    probs = predictor.predict_proba([e.text for e in dev])
    assert probs.shape == (24, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert predictor.queries == 24
    accuracy = float((probs.argmax(1) == np.array([e.label for e in dev])).mean())
    assert accuracy == pytest.approx(m["accuracy_combined"])
    # The linear head alone is the saved HF model: a plain Victim reproduces accuracy_cls.
    p_cls, p_knn, _ = predictor.parts([e.text for e in dev])
    assert float((p_cls.argmax(1) == [e.label for e in dev]).mean()) == pytest.approx(m["accuracy_cls"])
    assert float((p_knn.argmax(1) == [e.label for e in dev]).mean()) == pytest.approx(m["accuracy_knn"])
    # The model folder alone loads with the head on the pooling it was trained with (config.json).
    assert read_json(knn_run / "model" / "config.json")["advkit_pooling"] == "mean"
    plain = load_predictor(str(knn_run / "model"), max_length=32, batch_size=64)
    assert isinstance(plain, PooledVictim) and plain.head_pooling == "mean"
    assert np.allclose(plain.predict_proba([e.text for e in dev]), p_cls, atol=1e-5)
    assert type(load_predictor("tiny-random-en")) is Victim  # an un-fine-tuned model: the HF forward


def _tiny_cfg(**overrides):
    from advkit.finetune.config import FinetuneConfig

    import advkit.progress

    advkit.progress.QUIET = True
    base = dict(model="tiny-random-en", dataset="sst2", train_limit=32, limit=16, epochs=1, batch_size=8,
                max_length=32, queue_size=64, top_k=10, pooling="mean", save_model=False)
    return FinetuneConfig(**{**base, **overrides})


def test_same_seed_same_metrics(tmp_path):
    from advkit.finetune.train import run
    from advkit.results import RunDir

    a, b = (run(_tiny_cfg(method="knn", seed=5), RunDir(tmp_path / name, "finetune"))["metrics"] for name in "ab")
    for key in ("accuracy_cls", "accuracy_knn", "accuracy_combined", "train_loss_first", "train_loss_last_epoch",
                "contrastive_loss_last_epoch"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("method", ["ce", "scl", "moco"])
def test_baselines_train(method, tmp_path):
    from advkit.finetune.train import run
    from advkit.results import RunDir

    m = run(_tiny_cfg(method=method), RunDir(tmp_path / method, "finetune"))["metrics"]
    assert m["eval_accuracy"] == m["accuracy_cls"] and m["train_steps"] == 4
    assert ("contrastive_loss_last_epoch" in m) == (method != "ce")
    assert math.isfinite(m["train_loss_last_epoch"])


def test_few_shot_seeds_and_lambda_auto(tmp_path):
    """--shots K --seeds: K per class per seed, mean and std; lambda_inf chosen on held-out train."""
    from advkit.finetune.train import run
    from advkit.results import RunDir

    out = tmp_path / "fs"
    cfg = _tiny_cfg(method="knn", train_limit=None, shots=8, seeds="13,21", lambda_inf="auto")
    m = run(cfg, RunDir(out, "finetune"))["metrics"]
    assert m["seeds"] == [13, 21] and m["shots"] == 8
    runs = [m["per_seed"][s] for s in ("13", "21")]
    assert all(run["train_examples"] == 14 for run in runs)  # 8 per class, 1 per class held out
    assert all("held-out" in run["lambda_inf_selected_on"] for run in runs)
    values = [run["accuracy_combined"] for run in runs]
    assert m["accuracy_combined_mean"] == pytest.approx(np.mean(values))
    assert m["accuracy_combined_std"] == pytest.approx(np.std(values, ddof=1))
    assert (out / "seed-13" / "representations.png").is_file() and (out / "seed-21" / "metrics.json").is_file()


def test_bad_flags_are_one_line_errors(cli, tmp_path):
    r = cli("finetune", "--method", "knnn", "--out", tmp_path / "x")
    assert r.code == 2 and "did you mean 'knn'" in r.stderr and "Traceback" not in r.stderr
    r = cli("finetune", "--method", "knn", "--lambda-inf", "often", "--out", tmp_path / "x")
    assert r.code == 2 and "--lambda-inf" in r.stderr
    r = cli("finetune", "--seeds", "1,x", "--out", tmp_path / "x")
    assert r.code == 2 and "--seeds" in r.stderr


def test_lambda_inf_auto_selects_on_dev_when_test_is_reported(tmp_path, monkeypatch):
    """Selection sees dev examples only: never one of the reported test examples."""
    from advkit.knn_bert import predictor
    from advkit.finetune.train import run
    from advkit.results import RunDir

    seen = []
    original = predictor.select_lambda_inf

    def spy(p_cls, p_knn, labels, *args, **kwargs):
        seen.append(len(labels))
        return original(p_cls, p_knn, labels, *args, **kwargs)

    monkeypatch.setattr(predictor, "select_lambda_inf", spy)
    cfg = _tiny_cfg(method="knn", eval_split="test", lambda_inf="auto")
    m = run(cfg, RunDir(tmp_path / "auto", "finetune"))["metrics"]
    assert m["lambda_inf_selected_on"].startswith("dev (500 of 872")
    assert seen == [500] and m["train_examples"] == 32 and m["eval_split"] == "test"
    assert m["lambda_inf"] in predictor.LAMBDA_GRID
    assert set(m["selection_accuracy"]) == {str(x) for x in predictor.LAMBDA_GRID}


# ---- issue 16: one representation, a key encoder that moves, no self-positives, the control -----


def _tiny_classifier(arch: str, num_labels: int = 2):
    from transformers import (AlbertConfig, AlbertForSequenceClassification, BertConfig,
                              BertForSequenceClassification)

    torch.manual_seed(0)
    cfg = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
               max_position_embeddings=32, num_labels=num_labels)
    if arch == "bert":
        return BertForSequenceClassification(BertConfig(**cfg)).eval()
    return AlbertForSequenceClassification(AlbertConfig(embedding_size=8, **cfg)).eval()


@pytest.mark.parametrize("arch", ["bert", "albert"])  # minilm-l6 is a BERT, albert-tiny-zh an ALBERT
def test_head_reads_the_pooled_vector(arch):
    """pooler: exactly the HF forward (old runs and defaults keep their numbers); cls and mean: the
    same head, classifier(dropout(.)), on the vector the contrastive space and the KNN read."""
    from advkit.hf import mean_pool
    from advkit.victim import head_forward

    model = _tiny_classifier(arch)
    enc = {"input_ids": torch.randint(5, 50, (3, 7)), "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2,
                                                                                       [1] * 3 + [0] * 4])}
    with torch.no_grad():
        hf_logits = model(**enc).logits
        logits, rep = head_forward(model, enc, "pooler")
        assert torch.equal(logits, hf_logits)
        hidden = model.base_model(**enc).last_hidden_state
        logits, rep = head_forward(model, enc, "mean")
        assert torch.allclose(rep, mean_pool(hidden, enc["attention_mask"]), atol=1e-6)
        assert torch.allclose(logits, model.classifier(rep), atol=1e-6)
        assert not torch.allclose(logits, hf_logits, atol=1e-3)  # the head no longer reads the pooler
        logits, rep = head_forward(model, enc, "cls")
        assert torch.allclose(logits, model.classifier(hidden[:, 0]), atol=1e-6)


@pytest.mark.parametrize("method", ["ce", "scl", "moco"])
def test_every_method_head_reads_its_pooling_and_loads_so(method, tmp_path):
    """The head of a ce/scl/moco run reads --pooling mean; the run directory records it, and
    load_predictor (evaluate, every attack) rebuilds the predictor that scored eval_accuracy."""
    from advkit import data
    from advkit.finetune.train import run
    from advkit.predictor import load_predictor
    from advkit.victim import PooledVictim
    from advkit.results import RunDir

    m = run(_tiny_cfg(method=method, save_model=True), RunDir(tmp_path / "r", "finetune"))["metrics"]
    assert m["pooling"] == "mean"
    assert read_json(tmp_path / "r" / "model" / "config.json")["advkit_pooling"] == "mean"
    victim = load_predictor(str(tmp_path / "r"), max_length=32, batch_size=64)
    assert isinstance(victim, PooledVictim) and victim.head_pooling == "mean"
    dev = data.sample(data.load("sst2", "dev").examples, 16)
    probs = victim.predict_proba([e.text for e in dev])
    assert float((probs.argmax(1) == [e.label for e in dev]).mean()) == pytest.approx(m["eval_accuracy"])


def test_pooling_refused_where_the_head_cannot_read_it():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from advkit.errors import UserError
    from advkit.victim import check_head

    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2,
                                                                 hidden_dim=32, max_position_embeddings=32))
    check_head(model, "pooler")  # its own forward
    with pytest.raises(UserError, match="--pooling mean"):
        check_head(model, "mean")


def test_evaluate_lambda_inf_attacks_the_vote_or_the_head_alone(knn_run, tmp_path):
    """`evaluate --lambda-inf 1` scores the KNN vote alone, 0 the head alone: the run's own per-part
    predictions on the same dev sample; a model that is not a knn run refuses it."""
    records = {r["index"]: r for r in map(json.loads, (knn_run / "records.jsonl").read_text().splitlines())}
    for lam, key in (("1", "prediction_knn"), ("0", "prediction_cls")):
        out = tmp_path / f"lam{lam}"
        r = advkit("evaluate", "--model", knn_run, "--dataset", "sst2", "--split", "dev", "--limit", "24",
                   "--max-length", "32", "--lambda-inf", lam, "--quiet", "--out", out)
        assert r.code == 0, r.stderr
        assert read_json(out / "metrics.json")["config"]["lambda_inf"] == float(lam)
        got = {r["index"]: r["prediction"] for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
        assert got == {i: rec[key] for i, rec in records.items()}
    r = advkit("evaluate", "--model", knn_run / "model", "--dataset", "sst2", "--limit", "4", "--lambda-inf", "1",
               "--out", tmp_path / "no")
    assert r.code == 2 and "not a knn run directory" in r.stderr and not (tmp_path / "no").exists()


def test_old_knn_runs_load_as_they_predicted(knn_run, tmp_path):
    """A knn run saved before the head read the pooled vector (no advkit_pooling in config.json)
    loads with the HF head on the pooler and the projection on knn.json's pooling."""
    import json
    import shutil

    from advkit import data
    from advkit.predictor import load_predictor

    old = tmp_path / "old"
    shutil.copytree(knn_run, old)
    config = read_json(old / "model" / "config.json")
    del config["advkit_pooling"]
    (old / "model" / "config.json").write_text(json.dumps(config))
    predictor = load_predictor(str(old), max_length=32, batch_size=64)
    assert predictor.head_pooling == "pooler" and predictor.pooling == "mean"
    texts_ = [e.text for e in data.sample(data.load("sst2", "dev").examples, 8)]
    p_cls, _, q = predictor.parts(texts_)
    with torch.no_grad():
        enc = predictor._encode(texts_)
        assert np.allclose(p_cls, torch.softmax(predictor.model(**enc).logits, -1).numpy(), atol=1e-5)
    new_q = load_predictor(str(knn_run), max_length=32, batch_size=64).parts(texts_)[2]
    assert np.allclose(q, new_q, atol=1e-5)  # the KNN space was mean-pooled in both


def test_epochs_zero_is_the_knn_vote_of_the_pretrained_encoder(tmp_path, cli):
    """--epochs 0 --method knn: no step; the KNN space is the pre-trained encoder's pooled vector
    (no projection), and the saved run reproduces accuracy_knn."""
    from advkit import data
    from advkit.finetune.train import run
    from advkit.predictor import load_predictor
    from advkit.results import RunDir

    m = run(_tiny_cfg(method="knn", epochs=0, save_model=True), RunDir(tmp_path / "c", "finetune"))["metrics"]
    assert m["train_steps"] == 0 and m["train_loss_first"] is None and "momentum" not in m
    assert read_json(tmp_path / "c" / "knn.json")["projection"] is False
    assert not (tmp_path / "c" / "projection.safetensors").exists()
    # The vote by hand: mean-pooled vectors of the untouched pre-trained encoder, cosine top-10.
    train = data.sample(data.load("sst2", "train").examples, 32, seed=1)
    dev = data.sample(data.load("sst2", "dev").examples, 16)
    pretrained = Victim.load("tiny-random-en", max_length=32, batch_size=64)
    store = Datastore(torch.from_numpy(pretrained.embed([e.text for e in train], pooling="mean")),
                      torch.tensor([e.label for e in train]), 2)
    p_knn = store.predict(torch.from_numpy(pretrained.embed([e.text for e in dev], pooling="mean")), 10)
    gold = np.array([e.label for e in dev])
    assert float((p_knn.numpy().argmax(1) == gold).mean()) == pytest.approx(m["accuracy_knn"])
    loaded = load_predictor(str(tmp_path / "c"), max_length=32, batch_size=64).parts([e.text for e in dev])[1]
    assert np.allclose(loaded, p_knn.numpy(), atol=1e-6)

    r = cli("finetune", "--method", "ce", "--epochs", "0", "--out", tmp_path / "x")
    assert r.code == 2 and "--epochs" in r.stderr
    import dataclasses

    from advkit.finetune.config import FinetuneConfig

    help_ = next(f.metadata["help"] for f in dataclasses.fields(FinetuneConfig) if f.name == "epochs")
    assert "0 (method knn only)" in help_  # --help is generated from it


def test_derived_momentum():
    from advkit.knn_bert.encoder import derived_momentum

    # What the derived value is for: over a run of T steps the key encoder keeps a share m^T of its
    # start, so from 32 steps on it ends mostly moved (MoCo's fixed 0.999 keeps 97 % of a
    # 32-step run's start).
    for steps in (32, 100, 1000, 5000):
        assert derived_momentum(steps) ** steps < 0.04, steps
    assert derived_momentum(32) == 0.9  # clipped: 1 - 10/32 would be 0.69
    assert derived_momentum(1000) == pytest.approx(0.99)
    assert derived_momentum(10_000) == pytest.approx(0.999) and derived_momentum(10**6) == 0.999


def test_key_encoder_moves_within_a_short_run(tmp_path):
    """8 steps (64 examples, batch 8, 1 epoch) on the tiny model. key_encoder_progress =
    ||theta_k - theta_0|| / ||theta_q - theta_0||; a key encoder that follows linear drift with m over
    T steps reaches sum_t (1-m) m^(T-t) t / T of the query's distance: 0.36 for the derived m = 0.9,
    0.0045 for the old 0.999. Measured 0.42 and 0.0054; the threshold 0.2 sits between them."""
    from advkit.finetune.train import run
    from advkit.results import RunDir

    new = run(_tiny_cfg(method="knn", train_limit=64), RunDir(tmp_path / "new", "finetune"))["metrics"]
    assert new["train_steps"] == 8 and new["momentum"] == 0.9 and new["momentum_derived"] is True
    assert new["key_encoder_progress"] > 0.2
    old = run(_tiny_cfg(method="knn", train_limit=64, momentum=0.999),
              RunDir(tmp_path / "old", "finetune"))["metrics"]
    assert old["momentum"] == 0.999 and old["momentum_derived"] is False  # an explicit --momentum wins
    assert old["key_encoder_progress"] < 0.02


def test_loss_masks_the_querys_own_keys():
    """Same-id keys count neither as positives nor as negatives: the loss equals the loss over the
    queue without them."""
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    queue = F.normalize(torch.randn(12, 8, generator=g), dim=1)
    queue[0] = q[0]  # a stale copy of query 0: its most similar "positive"
    queue_labels = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1, 1, 0, -1, -1])
    queue_ids = torch.tensor([10, 11, 12, 13, 10, 14, 11, 12, 15, 16, -1, -1])
    labels, ids = torch.tensor([0, 1, 1]), torch.tensor([10, 12, 99])
    for loss in (SupervisedMomentumContrastiveLoss(tau=0.1, top_k=3, end_k=1),):
        masked = loss(q, labels, queue, queue_labels, ids=ids, queue_ids=queue_ids)
        for i in range(3):  # query by query, its own keys removed from the queue
            keep = queue_ids != ids[i]
            alone = loss(q[i : i + 1], labels[i : i + 1], queue[keep], queue_labels[keep])
            _, kept, _ = loss.select(q[i : i + 1], labels[i : i + 1], queue, queue_labels, ids=ids[i : i + 1],
                                     queue_ids=queue_ids)
            assert not (kept[0] & (queue_ids == ids[i])).any()
            assert kept.sum() > 0 and alone.item() > 0
        _, kept, _ = loss.select(q, labels, queue, queue_labels, ids=ids, queue_ids=queue_ids)
        per_query = [loss(q[i : i + 1], labels[i : i + 1], queue[queue_ids != ids[i]],
                          queue_labels[queue_ids != ids[i]]) * kept[i].sum() for i in range(3)]
        assert masked.item() == pytest.approx((sum(per_query) / kept.sum()).item(), abs=1e-5)
        unmasked = loss(q, labels, queue, queue_labels)
        assert unmasked.item() != pytest.approx(masked.item(), abs=1e-4)
    moco_keep = MoCoLoss().select(q, labels, queue, queue_labels, ids=ids, queue_ids=queue_ids)[1]
    assert not (moco_keep & (ids[:, None] == queue_ids[None, :])).any()


@pytest.mark.parametrize("method", ["knn", "moco"])
def test_no_query_is_its_own_positive_in_training(method, tmp_path, monkeypatch):
    """16 examples, batch 4, 3 epochs: the queue (32,000 asked) is clipped to 16, so after the first
    epoch it holds the last 16 keys, often the query's own; the positives the loss keeps never
    carry the query's example id."""
    from advkit.finetune.train import run
    from advkit.results import RunDir

    seen = []
    original = SupervisedMomentumContrastiveLoss.select

    def spy(self, q, labels, queue, queue_labels, positives=None, ids=None, queue_ids=None):
        out = original(self, q, labels, queue, queue_labels, positives, ids, queue_ids)
        seen.append((ids.clone(), queue_ids.clone(), out[1].clone()))
        return out

    monkeypatch.setattr(SupervisedMomentumContrastiveLoss, "select", spy)
    m = run(_tiny_cfg(method=method, train_limit=16, batch_size=4, epochs=3, queue_size=32000),
            RunDir(tmp_path / method, "finetune"))["metrics"]
    assert m["queue_size"] == 16 and len(seen) == m["train_steps"] == 12
    own_present = kept_total = 0
    for ids, queue_ids, keep in seen:
        own = ids[:, None] == queue_ids[None, :]
        own_present += int(own.any(1).sum())
        kept_total += int(keep.sum())
        assert not (keep & own).any()
    # Not vacuous: the queue holds the last 16 keys, so in epochs 2-3 a query whose previous key is
    # younger than 16 keys meets it (19 of the 32 queries of this seed).
    assert own_present > 0
    assert kept_total > 0


def test_converged_by_hand():
    from advkit.finetune.train import converged

    assert not converged([0.5], 1)  # one epoch: nothing to compare with
    assert not converged([0.5, 0.6], 1)
    assert converged([0.5, 0.6, 0.6], 1)  # equal is not better
    assert not converged([0.5, 0.6, 0.55, 0.61], 2)
    assert converged([0.5, 0.6, 0.55, 0.59], 2)


@pytest.mark.parametrize("method", ["ce", "knn"])
def test_patience_stops_when_dev_accuracy_stops_improving(method, tmp_path):
    """A learning rate too small to move the head: the dev accuracy stays put, so --patience 1 stops
    after the second epoch of at most five; the curve and the steps taken are in metrics.json."""
    from advkit.finetune.train import run
    from advkit.results import RunDir

    cfg = _tiny_cfg(method=method, epochs=5, patience=1, lr=1e-12, eval_split="test")
    m = run(cfg, RunDir(tmp_path / "run", "finetune"))["metrics"]
    assert m["epochs_trained"] == 2 and m["converged"] and m["train_steps"] == 2 * 4
    assert len(m["dev_accuracy_per_epoch"]) == 2 and m["dev_accuracy_per_epoch"][0] == m["dev_accuracy_per_epoch"][1]
    assert m["dev_accuracy_on"].startswith("dev (")
    cfg = _tiny_cfg(method=method, epochs=2, patience=1, lr=1e-3, eval_split="test")  # trains: every epoch measured
    m = run(cfg, RunDir(tmp_path / "moving", "finetune"))["metrics"]
    assert m["epochs_trained"] == 2 and len(m["dev_accuracy_per_epoch"]) == 2


def test_patience_on_the_reported_dev_split_holds_out_train(tmp_path, cli):
    """dev reported: the curve is measured on 10 % of train held out (never trained on), not on dev."""
    from advkit.finetune.train import run
    from advkit.results import RunDir

    m = run(_tiny_cfg(method="ce", epochs=2, patience=1, eval_split="dev"), RunDir(tmp_path / "run", "finetune"))
    m = m["metrics"]
    held = int(m["dev_accuracy_on"].split("held-out 10% of train (")[1].split()[0])
    assert held > 0 and m["train_examples"] == 32 - held
    assert len(m["dev_accuracy_per_epoch"]) == m["epochs_trained"]
    r = cli("finetune", "--method", "knn", "--epochs", "0", "--patience", "1", "--out", tmp_path / "x")
    assert r.code == 2 and "--patience" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
