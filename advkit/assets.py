"""Offline assets that `make setup` prepares: NLTK data for TextAttack, converted and tiny models.

Run as `python -m advkit.assets`; idempotent.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def main() -> None:
    from advkit import models

    print(f"stop words: {write_stopwords(nltk_dir())}")
    for alias in ("albert-tiny-zh", "m3e-small", "tiny-random-en", "tiny-random-zh"):
        print(f"{alias}: {models.resolve(alias)}")


if __name__ == "__main__":
    main()
