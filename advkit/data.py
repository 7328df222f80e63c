"""Dataset registry and loader.

Every data set becomes a list of `Example(text, text_b, label)` with integer labels
and a tuple of label names. The registry describes the nine data sets in
../shared/datasets in their real formats (header or none, label ids or names with
stray spaces, gzip, sentence pairs, unlabelled test splits); a user's own data works too:
- a folder whose train.*, dev.* (or validation.*) and test.* files are its splits;
- one .tsv/.csv/.jsonl file, split once into train/dev/test (80/10/10 per label, seed 0;
  identical texts always land in the same part), so that --split train|dev|test mean the
  same disjoint parts in every command and every run; --split all is the whole file;
- a Hugging Face data set name, for users who are online.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from advkit.errors import UserError, closest
from advkit.hf import is_cjk
from advkit.results import note_data

SKIP_BAD_ROWS = False  # --skip-bad-rows (set by the CLI): drop empty or malformed rows instead of stopping
BAD_ROW_HINT = "; fix the row, or pass --skip-bad-rows to drop such rows (counted in run.json)"
FILE_SPLITS = (("train", 0.8), ("dev", 0.1), ("test", 0.1))
FILE_SPLIT_SEED = 0
SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "test": "test"}


@dataclass(frozen=True)
class Example:
    text: str
    label: int | None  # None in unlabelled splits
    text_b: str | None = None


@dataclass(frozen=True)
class SplitFile:
    """One file of a registered data set. Columns are names (header) or 0-based indices."""

    path: str
    text: str | int
    label: str | int | None  # None: the split is unlabelled
    text_b: str | int | None = None
    header: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    language: str
    task: str
    labels: tuple[str, ...]
    splits: dict[str, SplitFile]
    hf_id: str | None = None  # where online users can get it


@dataclass
class Split:
    """The examples of one split, with what is needed to interpret them."""

    dataset: str
    split: str
    language: str
    labels: tuple[str, ...]
    examples: list[Example] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return all(e.label is not None for e in self.examples)


_EN, _ZH = "en", "zh"
_SENT = ("negative", "positive")

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("sst2", _EN, "sentiment", _SENT,
                    {s: SplitFile(f"sst2/{s}.tsv", "sentence", "label") for s in ("train", "dev", "test")},
                    hf_id="gpt3mix/sst2"),
        DatasetSpec("agnews", _EN, "topic", ("World", "Sports", "Business", "Sci/Tech"),
                    {s: SplitFile(f"agnews/{s}.tsv", "sentence", "label") for s in ("train", "dev", "test")},
                    hf_id="ag_news"),
        DatasetSpec("imdb", _EN, "sentiment (long)", _SENT,
                    {s: SplitFile(f"imdb/{s}.tsv.gz", "sentence", "label") for s in ("train", "test")},
                    hf_id="imdb"),
        DatasetSpec("olid", _EN, "offensive language", ("NOT", "OFF"),
                    {s: SplitFile(f"olid/{s}.tsv", "sentence", "label") for s in ("train", "dev", "test")}),
        DatasetSpec("snli", _EN, "NLI (pairs)", ("entailment", "neutral", "contradiction"),
                    {"dev": SplitFile("snli/validation.tsv", "premise", "label", text_b="hypothesis"),
                     "test": SplitFile("snli/test.tsv", "premise", "label", text_b="hypothesis")},
                    hf_id="snli"),
        DatasetSpec("chnsenticorp", _ZH, "sentiment", _SENT,
                    {"train": SplitFile("chnsenticorp/train.tsv", 0, 1, header=False),
                     "dev": SplitFile("chnsenticorp/dev.tsv", 0, 1, header=False),
                     "test": SplitFile("chnsenticorp/test.tsv", "text_a", None)}),
        DatasetSpec("thucnews", _ZH, "news-title topic",
                    ("finance", "realty", "stocks", "education", "science", "society", "politics",
                     "sports", "game", "entertainment"),
                    {s: SplitFile(f"thucnews/{s}.txt", 0, 1, header=False) for s in ("train", "dev", "test")}),
        DatasetSpec("tnews", _ZH, "news-title topic",
                    ("news_story", "news_culture", "news_entertainment", "news_sports", "news_finance",
                     "news_house", "news_car", "news_edu", "news_tech", "news_military", "news_travel",
                     "news_world", "news_stock", "news_agriculture", "news_game"),
                    {"train": SplitFile("tnews/train.tsv", 0, 1, header=False),
                     "dev": SplitFile("tnews/dev.tsv", 0, 1, header=False),
                     "test": SplitFile("tnews/test.json", "sentence", None)}),
        DatasetSpec("lcqmc", _ZH, "question matching (pairs)", ("different", "same"),
                    {s: SplitFile(f"lcqmc/{s}.txt", 0, 2, text_b=1, header=False)
                     for s in ("train", "dev", "test")}),
    ]
}

LOCAL_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json", ".txt")


def data_root(flag: str | None = None) -> Path | None:
    """--data-root, then $ADVKIT_DATA, then ../shared/datasets beside the cwd or the repo."""
    if flag:
        root = Path(flag)
        if not root.is_dir():
            raise UserError(f"--data-root {flag}: no such directory")
        return root
    if os.environ.get("ADVKIT_DATA"):
        root = Path(os.environ["ADVKIT_DATA"])
        if not root.is_dir():
            raise UserError(f"ADVKIT_DATA={root}: no such directory")
        return root
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        root = base.parent / "shared" / "datasets"
        if root.is_dir():
            return root
    return None


def load(dataset: str, split: str, *, root: str | None = None, text_column: str | None = None,
         text_b_column: str | None = None, label_column: str | None = None) -> Split:
    """Load one split of a registered data set, a local file, or a Hugging Face data set."""
    if dataset in REGISTRY:
        spec = REGISTRY[dataset]
        if split not in spec.splits:
            raise UserError(f"data set '{dataset}' has no split '{split}' "
                            f"(splits: {', '.join(spec.splits)}){closest(split, spec.splits)}")
        base = data_root(root)
        if base is None:
            raise UserError(f"data set '{dataset}': no data root; pass --data-root or set ADVKIT_DATA")
        sf = spec.splits[split]
        rows = read_table(base / sf.path, header=sf.header)
        examples = to_examples(rows, base / sf.path, sf.text, sf.text_b, sf.label, spec.labels)
        return Split(dataset, split, spec.language, spec.labels, examples)
    path = Path(dataset)
    if path.is_dir():
        return load_folder(path, split, text_column, text_b_column, label_column)
    if path.suffix in LOCAL_SUFFIXES or path.name.endswith(".gz") or path.exists():
        return load_file_part(path, split, text_column, text_b_column, label_column)
    if "/" not in dataset and closest(dataset, REGISTRY):
        raise UserError(f"unknown data set '{dataset}'{closest(dataset, REGISTRY)}")
    return load_hub(dataset, split, text_column, text_b_column, label_column)


def _columns(path: Path, rows, text_column, label_column) -> tuple[str, str]:
    if not rows:  # a header alone names its columns, but there is nothing to read
        raise UserError(f"{path}: no examples")
    columns = list(rows[0][1].keys())
    text = text_column or next((c for c in ("sentence", "text", "premise", "content") if c in columns),
                               None)
    if text is None:
        raise UserError(f"{path}: no text column among {columns}; pass --text-column")
    label = label_column or ("label" if "label" in columns else None)
    if label_column is None and label is None:
        raise UserError(f"{path}: no 'label' column among {columns}; pass --label-column")
    if label not in columns:  # else the label-name inference below sees no values
        raise UserError(f"{path}: no column '{label}' among {columns}{closest(label, columns)}")
    return text, label


def _label_names(values) -> tuple[str, ...]:
    """Label names from a file's values: ids 0..max when they are all ids, else the sorted names."""
    raw = sorted({str(v).strip() for v in values if v is not None and str(v).strip()})
    return tuple(str(i) for i in range(max(int(x) for x in raw) + 1)) if raw and all(x.isdigit() for x in raw) \
        else tuple(raw)


def load_local(path: Path, text_column: str | None, text_b_column: str | None, label_column: str | None,
               names: tuple[str, ...] | None = None) -> Split:
    """A user's file with a header row (.tsv/.csv) or JSON lines, whole; labels are ids or names
    (`names`: a folder's label names, the same for each of its files)."""
    if not path.is_file():
        raise UserError(f"{path}: is a directory, not a data file" if path.is_dir() else f"{path}: no such file")
    rows = read_table(path, header=True)
    text, label = _columns(path, rows, text_column, label_column)
    names = names or _label_names(r.get(label) for _, r in rows)
    examples = to_examples(rows, path, text, text_b_column, label, names)
    language = "zh" if sum(is_cjk(c) for e in examples[:200] for c in e.text) > 0 else "en"
    return Split(str(path), path.stem, language, names, examples)


def folder_files(path: Path) -> dict[str, Path]:
    """A data-set folder's split files: train.*, dev.* (or validation.*), test.* (.tsv/.csv/.jsonl[.gz])."""
    found: dict[str, Path] = {}
    for f in sorted(path.iterdir()):
        name = f.name.removesuffix(".gz")
        stem, suffix = Path(name).stem, Path(name).suffix
        if f.is_file() and suffix in LOCAL_SUFFIXES and stem in SPLIT_NAMES:
            split = SPLIT_NAMES[stem]
            if split in found:
                raise UserError(f"{path}: two {split} files ({found[split].name}, {f.name}); keep one")
            found[split] = f
    if not found:
        raise UserError(f"{path}: is a folder without split files; a data-set folder holds train.*, dev.* (or "
                        "validation.*) and test.* (.tsv, .csv or .jsonl)")
    return found


def load_folder(path: Path, split: str, text_column, text_b_column, label_column) -> Split:
    """One split of a data-set folder; label names are read from all its files, so ids agree across splits."""
    files = folder_files(path)
    name = SPLIT_NAMES.get(split, split)
    if name not in files:
        raise UserError(f"{path}: no {split} file (splits: {', '.join(files)}){closest(split, files)}")
    values = []
    for f in files.values():
        rows = read_table(f, header=True)
        values += [r.get(_columns(f, rows, text_column, label_column)[1]) for _, r in rows]
    part = load_local(files[name], text_column, text_b_column, label_column, names=_label_names(values))
    return Split(str(path), name, part.language, part.labels, part.examples)


def file_parts(examples: list[Example], seed: int = FILE_SPLIT_SEED) -> dict[str, list[int]]:
    """One file's rows split into train/dev/test (80/10/10), stratified by label and seeded. Rows with
    the same text (and second text) form one group that lands in one part: a test text is never a
    training text. The parts depend only on the file's rows, so every command and run sees the same."""
    groups: dict[tuple, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault((e.text, e.text_b), []).append(i)
    by_label: dict[str, list[tuple]] = {}
    for key, rows in groups.items():
        by_label.setdefault(str(examples[rows[0]].label), []).append(key)
    rng = random.Random(seed)
    parts: dict[str, list[int]] = {name: [] for name, _ in FILE_SPLITS}
    for label in sorted(by_label):
        keys = by_label[label]
        rng.shuffle(keys)
        start = 0
        for name, share in reversed(FILE_SPLITS):  # test, dev first: small parts get their share rounded
            size = len(keys) - start if name == "train" else round(share * len(keys))
            for key in keys[start : start + size]:
                parts[name] += groups[key]
            start += size
    return {name: sorted(rows) for name, rows in parts.items()}


def load_file_part(path: Path, split: str, text_column, text_b_column, label_column) -> Split:
    """A part (train/dev/test) of one local file, or the whole file for --split all."""
    whole = load_local(path, text_column, text_b_column, label_column)
    if split == "all":
        return whole
    name = SPLIT_NAMES.get(split)
    if name is None:
        raise UserError(f"{path}: one file is split into train, dev and test (80/10/10 per label, seed "
                        f"{FILE_SPLIT_SEED}); --split must be one of those or all, not '{split}'")
    parts = file_parts(whole.examples)
    note_data(str(path), split_seed=FILE_SPLIT_SEED, split_shares=dict(FILE_SPLITS),
              split_sizes={k: len(v) for k, v in parts.items()})
    examples = [whole.examples[i] for i in parts[name]]
    if not examples:
        raise UserError(f"{path}: its {name} part is empty ({len(whole.examples)} rows split 80/10/10 per label); "
                        f"give a folder with a {name} file, or --split all")
    return Split(whole.dataset, name, whole.language, whole.labels, examples)


def load_hub(name: str, split: str, text_column, text_b_column, label_column) -> Split:
    """A Hugging Face data set, for users who are online."""
    try:
        import datasets

        ds = datasets.load_dataset(name, split={"dev": "validation"}.get(split, split))
    except Exception as e:  # the hub raises many types; all mean "cannot get it"
        raise UserError(f"unknown data set '{name}': not registered ({', '.join(REGISTRY)}), "
                        f"not a local file, and Hugging Face could not load it ({type(e).__name__})") from None
    text = text_column or next((c for c in ("sentence", "text", "premise") if c in ds.column_names), None)
    label = label_column or "label"
    if text is None or label not in ds.column_names:
        raise UserError(f"{name}: columns {ds.column_names}; pass --text-column/--label-column")
    feature = ds.features[label]
    names = tuple(feature.names) if hasattr(feature, "names") else tuple(sorted({str(x) for x in ds[label]}))
    examples = [Example(r[text], int(r[label]) if hasattr(feature, "names") else names.index(str(r[label])),
                        r[text_b_column] if text_b_column else None) for r in ds]
    return Split(name, split, "en", names, examples)


_SKIPPED: dict[str, list[int]] = {}  # file -> the lines --skip-bad-rows dropped


def bad_row(path: Path, line: int, problem: str) -> None:
    """A row that cannot be an example: stop with its line (and how to go on), or skip it under
    --skip-bad-rows and note its line for run.json."""
    if not SKIP_BAD_ROWS:
        raise UserError(f"{path}:{line}: {problem}{BAD_ROW_HINT}")
    lines = _SKIPPED.setdefault(str(path), [])
    if line not in lines:
        lines.append(line)
        note_data(str(path), skipped_rows=len(lines), skipped_lines=sorted(lines)[:1000])


def read_table(path: Path, header: bool) -> list[tuple[int, dict]]:
    """Rows of a TSV/CSV/JSON-lines file (optionally gzip) as (line number, {column: value})."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (check --data-root)") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a data file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except OSError:
            raise UserError(f"{path}: not a gzip file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text") from None
    if "\x00" in text:
        raise UserError(f"{path}:{text[: text.index(chr(0))].count(chr(10)) + 1}: binary data, not text")
    # Only \n ends a row: str.splitlines() also breaks on \x85 and \u2028, which occur inside IMDb reviews.
    lines = text.replace("\r\n", "\n").split("\n")
    if not any(line.strip() for line in lines):
        raise UserError(f"{path}: empty file")
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return _read_jsonl(path, lines)
    delimiter = "," if name.endswith(".csv") else "\t"
    if delimiter == ",":
        reader = csv.reader(io.StringIO(text))
        parsed = [(i, row) for i, row in enumerate(reader, 1) if row]
    else:  # TSV as written by these corpora: no quoting, quotes are text
        parsed = [(i, line.split("\t")) for i, line in enumerate(lines, 1) if line.strip()]
    if header:
        (_, columns), parsed = parsed[0], parsed[1:]
        columns = [c.strip() for c in columns]
        rows = []
        for i, fields in parsed:
            if len(fields) != len(columns):
                bad_row(path, i, f"expected {len(columns)} fields ({', '.join(columns)}), found {len(fields)}")
                continue
            rows.append((i, dict(zip(columns, fields))))
        return rows
    width = len(parsed[0][1])
    rows = []
    for i, fields in parsed:
        if len(fields) != width:
            bad_row(path, i, f"expected {width} tab-separated fields, found {len(fields)}")
            continue
        rows.append((i, dict(enumerate(fields))))
    return rows


def _read_jsonl(path: Path, lines: list[str]) -> list[tuple[int, dict]]:
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{i}: not a JSON object")
        rows.append((i, row))
    return rows


def to_examples(rows, path: Path, text, text_b, label, names: tuple[str, ...]) -> list[Example]:
    """Map rows to Examples; labels may be ids ('1', ' 1') or names ('positive')."""
    index = {n: i for i, n in enumerate(names)}
    examples = []
    for line, row in rows:
        missing = [c for c in (text, text_b, label) if c is not None and c not in row]
        if missing:
            column = missing[0]
            what = f"column {column + 1}" if isinstance(column, int) else f"column '{column}'"
            bad_row(path, line, f"missing {what}" + (f"{closest(column, row)}" if isinstance(column, str) else ""))
            continue
        # A JSON null or a number is not a text (str(None) would be read as the review "None").
        wrong = [c for c in (text, text_b) if c is not None and not isinstance(row[c], str)]
        if wrong:
            bad_row(path, line, f"{'null' if row[wrong[0]] is None else 'non-string'} text in column '{wrong[0]}'")
            continue
        y = None
        if label is not None:
            if row[label] is None or not isinstance(row[label], (str, int)) or isinstance(row[label], bool):
                bad_row(path, line, f"{'null' if row[label] is None else 'non-string'} label")
                continue
            value = str(row[label]).strip()
            if value in index:
                y = index[value]
            elif value.isdigit() and int(value) < len(names):
                y = int(value)
            elif not value:
                bad_row(path, line, "empty label")
                continue
            else:
                raise UserError(f"{path}:{line}: unknown label '{value}' (labels: {', '.join(names)})")
        content = row[text].strip()
        if not content:
            bad_row(path, line, "empty text")
            continue
        examples.append(Example(content, y, row[text_b].strip() if text_b is not None else None))
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples


HALVES = ("A", "B")  # the training text split in two by line: what proposes (A) and what judges (B) share nothing


def text_half(line: str) -> str:
    """The half a line belongs to, by a hash of its text (so a line repeated anywhere lands in one half)."""
    import zlib

    return HALVES[zlib.crc32(line.encode("utf-8")) % 2]


def training_text(language: str, root: str | None = None, half: str | None = None) -> tuple[list[str], list[str]]:
    """(distinct non-empty lines, data set names): every text of the registered training splits of
    one language (both sentences of a pair), in registry order; with `half` ("A" or "B") only the lines
    of that half (`text_half`): Chinese attacks build their proposer from A and their fluency judge
    from B, so the judge never rewards a proposer for repeating its own training text."""
    lines, names = _training_lines(language, root)
    return ([line for line in lines if text_half(line) == half] if half else list(lines)), list(names)


@functools.lru_cache(maxsize=4)  # the piece LM, its held-out half and the fluency judge read it in one process
def _training_lines(language: str, root: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines, names = [], []
    for name, spec in REGISTRY.items():
        if spec.language == language and "train" in spec.splits:
            split = load(name, "train", root=root)
            lines.extend(e.text for e in split.examples)
            lines.extend(e.text_b for e in split.examples if e.text_b)
            names.append(name)
    return tuple(dict.fromkeys(line.strip() for line in lines if line.strip())), tuple(names)


def sample(examples: list, limit: int | None, seed: int = 0) -> list:
    """A seeded subset of `limit` examples in file order (files may be sorted by label)."""
    if limit is None or limit >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]


def count_rows(dataset: str, root: str | None = None) -> dict[str, int | None]:
    """Rows per split, counted from the files (None where the file is absent)."""
    spec = REGISTRY[dataset]
    base = data_root(root)
    counts = {}
    for split, sf in spec.splits.items():
        path = base / sf.path if base else None
        if path is None or not path.is_file():
            counts[split] = None
            continue
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            n = sum(1 for line in f if line.strip())
        counts[split] = n - (1 if sf.header and not path.name.endswith(".json") else 0)
    return counts


def default_split(dataset: str) -> str:
    """test when it is labelled, else dev (METHODS.md: shared definitions)."""
    spec = REGISTRY.get(dataset)
    if spec is None:
        return "test"
    test = spec.splits.get("test")
    return "test" if test is not None and test.label is not None else "dev"


def listing(root_flag: str | None = None) -> list[str]:
    """`advkit list datasets`: name, language, task, labels, and rows per split (counted from the files)."""
    root = data_root(root_flag)
    lines = [f"data root: {root or 'none found (pass --data-root or set ADVKIT_DATA)'}"]
    for name, spec in REGISTRY.items():
        counts = count_rows(name, root_flag)
        rows = ", ".join(f"{s} {'missing' if n is None else n}{'' if spec.splits[s].label else ' (unlabelled)'}"
                         for s, n in counts.items())
        lines.append(f"{name:<13}{spec.language:<4}{spec.task:<27}{'/'.join(spec.labels)[:60]:<62}{rows}")
    return lines


def describe(path: str, text_column: str | None = None, label_column: str | None = None) -> list[str]:
    """`advkit list datasets PATH`: the splits of a user's file or folder, with sizes and label counts."""
    folder = Path(path)
    if folder.is_dir():
        found = folder_files(folder)
        splits = [name for name, _ in FILE_SPLITS if name in found]
        how = f"{path}: a data-set folder; splits from its files"
    else:
        splits = [name for name, _ in FILE_SPLITS]
        how = (f"{path}: one file, split {'/'.join(str(round(100 * s)) for _, s in FILE_SPLITS)} per label "
               f"(seed {FILE_SPLIT_SEED}; identical texts in one part); --split all is the whole file")
    lines = [how]
    for name in splits:
        part = load(path, name, text_column=text_column, label_column=label_column)
        counts = {label: sum(e.label == i for e in part.examples) for i, label in enumerate(part.labels)}
        lines.append(f"{name:<6}{len(part.examples):>8} rows  {part.language}  labels: "
                     + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return lines
