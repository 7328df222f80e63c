"""Fluency scores.

- `CharNgram`: perplexity under an interpolated Kneser-Ney character trigram LM (Chen & Goodman
  1998) counted on half B of the Chinese training splits: attack-zh's default fluency judge. It proposes
  no substitutes (every masked LM here does: the chars and pieces generators), reads Simplified
  text natively, and costs nothing next to a pseudo-perplexity (one pass per character).
- `WordNgram`: the same estimator over lower-cased words, counted on the English training splits
  (`english_judge`, cached): the fluency judge of English attacks, which propose words from WordNet
  or a masked LM and must not be judged by one.
- `PseudoPerplexity` under a masked LM (Salazar et al., ACL 2020): the ONION defence's
  word-suspicion score, and attack-zh's `--fluency-lm MODEL`.
  PPPL = exp(-mean_t log P(w_t | the text without w_t)), each token masked in turn, batched.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

from advkit import hf, models
from advkit.errors import UserError

NGRAM = "ngram"  # --fluency-lm's name for the character n-gram judge


class CharNgram:
    """Interpolated Kneser-Ney over characters, order 3, one discount D per order:
    P(w | uv) = max(c(uvw) - D, 0) / c(uv.) + D * N1+(uv.) / c(uv.) * P2(w | v), where P2 uses
    continuation counts N1+(.vw) the same way and bottoms out in N1+(.w) / N1+(..) mixed with a
    uniform share for characters never seen. Lines are padded with start and end marks."""

    BOS, EOS = "\x02", "\x03"

    def __init__(self, lines, discount: float = 0.75):
        self.d = discount
        tri = Counter()
        for line in lines:
            padded = self.BOS * 2 + line + self.EOS
            tri.update(padded[i : i + 3] for i in range(len(padded) - 2))
        self.tri = tri
        self.ctx2, self.types2 = Counter(), Counter()  # c(uv.), N1+(uv.)
        cont2 = Counter()  # N1+(.vw)
        for g, n in tri.items():
            self.ctx2[g[:2]] += n
            self.types2[g[:2]] += 1
            cont2[g[1:]] += 1
        self.cont2 = cont2
        self.ctx1, self.types1, cont1 = Counter(), Counter(), Counter()  # N1+(.v.), N1+(v.) over cont2, N1+(.w)
        for g in cont2:
            self.ctx1[g[0]] += cont2[g]
            self.types1[g[0]] += 1
            cont1[g[1]] += 1
        self.cont1, self.total1 = cont1, sum(cont1.values())
        self.vocab = len(cont1) + 1  # + one slot for every unseen character

    def prob(self, u: str, v: str, w: str) -> float:
        d = self.d
        p = max(self.cont1[w] - d, 0) / self.total1 + d * len(self.cont1) / self.total1 / self.vocab
        n = self.ctx1[v]
        if n:
            p = max(self.cont2[v + w] - d, 0) / n + d * self.types1[v] / n * p
        n = self.ctx2[u + v]
        if n:
            p = max(self.tri[u + v + w] - d, 0) / n + d * self.types2[u + v] / n * p
        return p

    def __call__(self, text: str) -> float | None:
        if not text:
            return None
        padded = self.BOS * 2 + text + self.EOS
        logp = sum(math.log(self.prob(*padded[i : i + 3])) for i in range(len(padded) - 2))
        return math.exp(-logp / (len(padded) - 2))


WORD = re.compile(r"\w+|[^\w\s]")  # words and single punctuation marks: "don't" -> don ' t, as SST-2's "do n't"


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class WordNgram:
    """CharNgram's interpolated Kneser-Ney (order 3, one discount) over the lower-cased words of
    `words`, counted with numpy: the English training splits hold some 7M words, which Python
    dicts of trigram tuples would hold in gigabytes. An n-gram is one int64 code (ids in base B =
    words + 3), so each count table is a sorted key array and a value array, read by searchsorted.
    Ids: 0 the start mark, 1 the end mark, 2.. the words in sorted order, B - 1 any unseen word."""

    BOS, EOS = 0, 1

    def __init__(self, lines=None, discount: float = 0.75, *, arrays: dict | None = None):
        import numpy as np

        if arrays is None:
            arrays = self.count(lines, discount)
        self.arrays = arrays
        self.d = float(arrays["discount"])
        self.vocab_words = bytes(arrays["vocab"]).decode("utf-8").split("\n") if len(arrays["vocab"]) else []
        self.ids = {w: i + 2 for i, w in enumerate(self.vocab_words)}
        self.base = len(self.vocab_words) + 3
        self.unseen = self.base - 1
        for name in ("tri", "tri_n", "ctx2", "ctx2_n", "types2", "cont2", "cont2_n", "ctx1", "ctx1_n", "types1"):
            setattr(self, name, arrays[name])
        self.cont1 = np.append(arrays["cont1"], 0)  # N1+(.w) by id; 0 for the unseen id
        self.total1 = int(self.cont1.sum())
        self.seen1 = int((self.cont1 > 0).sum())  # the words (and the end mark) seen after something
        self.vocab = self.seen1 + 1  # + one slot for every unseen word
        self.lines, self.words = int(arrays["lines"]), int(arrays["words"])  # the corpus's size
        self.corpus = bytes(arrays["corpus"]).decode("utf-8") if "corpus" in arrays else ""  # data set names

    @staticmethod
    def count(lines, discount: float = 0.75) -> dict:
        """The count tables of the corpus, as the arrays `WordNgram(arrays=...)` reads (and a cache stores)."""
        import numpy as np

        tokenized = [words(line) for line in lines]
        vocab = sorted({w for t in tokenized for w in t})
        ids = {w: i + 2 for i, w in enumerate(vocab)}
        base = len(vocab) + 3
        if base ** 3 >= 2 ** 63:
            raise ValueError(f"{len(vocab)} words: trigram codes would overflow int64")
        u, v, w = [], [], []
        for t in tokenized:
            seq = [0, 0] + [ids[x] for x in t] + [1]
            u += seq[:-2]
            v += seq[1:-1]
            w += seq[2:]
        u, v, w = (np.asarray(x, dtype=np.int64) for x in (u, v, w))
        tri, tri_n = np.unique((u * base + v) * base + w, return_counts=True)  # c(uvw)
        ctx2, first, ctx2_types = np.unique(tri // base, return_index=True, return_counts=True)
        ctx2_n = np.add.reduceat(tri_n, first)  # c(uv.): tri is sorted, so each context is one run
        cont2, cont2_n = np.unique(tri % (base * base), return_counts=True)  # N1+(.vw)
        ctx1, first, types1 = np.unique(cont2 // base, return_index=True, return_counts=True)  # N1+(v.)
        ctx1_n = np.add.reduceat(cont2_n, first)  # N1+(.v.)
        cont1 = np.bincount(cont2 % base, minlength=base - 1)[: base - 1]  # N1+(.w)
        return {"discount": np.float64(discount), "vocab": np.frombuffer("\n".join(vocab).encode("utf-8"), np.uint8),
                "tri": tri, "tri_n": tri_n, "ctx2": ctx2, "ctx2_n": ctx2_n, "types2": ctx2_types,
                "cont2": cont2, "cont2_n": cont2_n, "ctx1": ctx1, "ctx1_n": ctx1_n, "types1": types1,
                "cont1": cont1, "lines": np.int64(len(tokenized)), "words": np.int64(len(u) - len(tokenized))}

    def id_of(self, word: str) -> int:
        return self.ids.get(word, self.unseen)

    @staticmethod
    def _lookup(keys, values, query):
        import numpy as np

        at = np.searchsorted(keys, query).clip(max=max(len(keys) - 1, 0))
        found = (keys[at] == query) if len(keys) else np.zeros(len(query), bool)
        return np.where(found, values[at] if len(keys) else 0, 0)

    def probs(self, u, v, w):
        """P(w | u v) for arrays of ids, the three orders interpolated as in CharNgram.prob."""
        import numpy as np

        d, b = self.d, self.base
        u, v, w = (np.asarray(x, dtype=np.int64) for x in (u, v, w))
        p = np.maximum(self.cont1[w] - d, 0) / self.total1 + d * self.seen1 / self.total1 / self.vocab
        n = self._lookup(self.ctx1, self.ctx1_n, v)
        kinds = self._lookup(self.ctx1, self.types1, v)
        seen2 = np.maximum(self._lookup(self.cont2, self.cont2_n, v * b + w) - d, 0)
        p = np.where(n > 0, (seen2 + d * kinds * p) / np.maximum(n, 1), p)
        n = self._lookup(self.ctx2, self.ctx2_n, u * b + v)
        kinds = self._lookup(self.ctx2, self.types2, u * b + v)
        seen3 = np.maximum(self._lookup(self.tri, self.tri_n, (u * b + v) * b + w) - d, 0)
        return np.where(n > 0, (seen3 + d * kinds * p) / np.maximum(n, 1), p)

    def prob(self, u: str | int, v: str | int, w: str | int) -> float:
        """P(w | u v); a word is a string, or an id (BOS, EOS)."""
        ids = [x if isinstance(x, int) else self.id_of(x) for x in (u, v, w)]
        return float(self.probs(*([i] for i in ids))[0])

    def __call__(self, text: str) -> float | None:
        """Perplexity per word, the end mark included; None for a text without words."""
        import numpy as np

        t = words(text)
        if not t:
            return None
        seq = [self.BOS, self.BOS] + [self.id_of(x) for x in t] + [self.EOS]
        logp = np.log(self.probs(seq[:-2], seq[1:-1], seq[2:])).sum()
        return math.exp(-float(logp) / (len(seq) - 2))


ENGLISH_CACHE_VERSION = "word-kn3-v2"  # bump when the tokenizer or the count tables change


def english_corpus_files(root: str | None) -> list:
    """The registered English training files (the judge's corpus), in registry order."""
    from advkit import data

    base = data.data_root(root)
    if base is None:
        return []
    return [base / spec.splits["train"].path for spec in data.REGISTRY.values()
            if spec.language == "en" and "train" in spec.splits and (base / spec.splits["train"].path).is_file()]


@lru_cache(maxsize=2)
def english_judge(root: str | None = None) -> WordNgram | None:
    """The word trigram judge of every registered English training split, or None when none is found.

    Counting takes some 20 s; the tables are cached under the advkit cache, keyed by the
    SHA-256 of the training files and ENGLISH_CACHE_VERSION, so a changed file rebuilds them."""
    import hashlib
    import io
    import os
    import tempfile

    import numpy as np

    from advkit import data

    files = english_corpus_files(root)
    if not files:
        return None
    h = hashlib.sha256(ENGLISH_CACHE_VERSION.encode())
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    path = models.cache_dir() / "fluency" / f"{ENGLISH_CACHE_VERSION}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return WordNgram(arrays={k: z[k] for k in z.files})
    lines, names = data.training_text("en", root)
    arrays = WordNgram.count(lines)
    arrays["corpus"] = np.frombuffer(", ".join(names).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # renamed into place: never half a cache
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)
    return WordNgram(arrays=arrays)


WORD_TRIGRAM = "word-trigram"  # the name of the English word trigram judge (english_judge) as an LM flag's value
LANGUAGE_OF = {NGRAM: "zh", WORD_TRIGRAM: "en"}  # the n-gram judges each read one language
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}


@lru_cache(maxsize=2)
def ngram_judge(root: str | None) -> CharNgram | None:
    """The character trigram judge of half B of the registered Chinese training splits (built once per
    process; None when none is found): the piece LM is built from half A, so the judge shares no line with
    the proposer."""
    from advkit import data

    lines, _ = data.training_text("zh", root, half="B")
    return CharNgram(lines) if lines else None


def perplexity_lm(ref: str, device: str, max_length: int, flag: str, data_root: str | None = None,
                  language: str | None = None):
    """`text -> perplexity | None` that `flag` names (--fluency-lm, --onion-lm): NGRAM, the Chinese character
    trigram judge; WORD_TRIGRAM, the English word trigram judge (a causal word LM, as ONION's GPT-2 is);
    else a masked LM's pseudo-perplexity. An n-gram judge refuses text of another `language` (None or "":
    not known)."""
    if ref in LANGUAGE_OF and language and LANGUAGE_OF[ref] != language:
        raise UserError(f"{flag} {ref} is an {LANGUAGE_NAMES[LANGUAGE_OF[ref]]} LM; the data is "
                        f"{LANGUAGE_NAMES.get(language, language)}: name a masked LM of its language")
    if ref not in LANGUAGE_OF:
        return PseudoPerplexity(ref, device, max_length, flag=flag)
    judge = ngram_judge(data_root) if ref == NGRAM else english_judge(data_root)
    if judge is None:
        raise UserError(f"{flag} {ref}: no registered {LANGUAGE_NAMES[LANGUAGE_OF[ref]]} training split under the "
                        "data root to count it from (see advkit list datasets)")
    return judge


class PseudoPerplexity:
    """PPPL = exp(-mean_t log P(w_t | text without w_t)), each token masked in turn (one batch)."""

    def __init__(self, ref: str, device: str, max_length: int, flag: str = "--fluency-lm"):
        self.model, self.tokenizer = models.load_masked_lm(ref, flag, device)
        self.device, self.max_length = device, max_length

    def __call__(self, text: str) -> float | None:
        import torch

        # a Traditional-script LM (albert-tiny-zh) scores the text converted to Traditional (hf.model_text)
        ids = self.tokenizer(hf.model_text(self.tokenizer, text), truncation=True, max_length=self.max_length)["input_ids"]
        inner = list(range(1, len(ids) - 1))  # not [CLS] / [SEP]
        if not inner:
            return None
        batch = torch.tensor([ids] * len(inner))
        batch[torch.arange(len(inner)), torch.tensor(inner)] = self.tokenizer.mask_token_id
        total = 0.0
        with torch.inference_mode():
            for s in range(0, len(inner), 64):
                logits = self.model(input_ids=batch[s : s + 64].to(self.device)).logits.float()
                rows = torch.arange(logits.shape[0])
                at = torch.tensor(inner[s : s + 64])
                logp = torch.log_softmax(logits[rows, at], dim=-1)
                total += float(logp[rows, torch.tensor([ids[t] for t in inner[s : s + 64]])].sum())
        return math.exp(-total / len(inner))
