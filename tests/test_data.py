"""Dataset registry and loader: every shared data set, malformed files, local files, data root, sampling."""

import ast
import gzip
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from advkit import data
from advkit.errors import UserError

needs_shared = pytest.mark.shared_data  # skipped when missing, a failure under CI=true

# Rows of the unlabelled splits, from the notes of their SOURCE.txt (their row-count tables omit them).
UNLABELLED_ROWS = {("chnsenticorp", "test"): 1200, ("tnews", "test"): 10000}
PAIRS = {"snli", "lcqmc"}


def source_counts(dataset: str) -> dict[str, tuple[int, dict]]:
    """{file name: (rows, label distribution)} parsed from the data set's SOURCE.txt."""
    text = (SHARED_DATA / dataset / "SOURCE.txt").read_text(encoding="utf-8")
    found = {}
    for m in re.finditer(r"^\s+(\S+): (\d+) (\{.*\})$", text, re.M):
        found[m.group(1)] = (int(m.group(2)), ast.literal_eval(m.group(3)))
    return found


def expected(dataset: str, split: str) -> tuple[int, dict | None]:
    if (dataset, split) in UNLABELLED_ROWS:
        return UNLABELLED_ROWS[dataset, split], None
    return source_counts(dataset)[Path(data.REGISTRY[dataset].splits[split].path).name]


ALL_SPLITS = [(name, split) for name, spec in data.REGISTRY.items() for split in spec.splits]


def test_registry_has_the_nine_shared_sets():
    assert sorted(data.REGISTRY) == sorted(
        ["sst2", "agnews", "imdb", "olid", "snli", "chnsenticorp", "thucnews", "tnews", "lcqmc"])


@needs_shared
@pytest.mark.parametrize("dataset,split", ALL_SPLITS, ids=[f"{d}-{s}" for d, s in ALL_SPLITS])
def test_every_registered_split_loads_as_documented(dataset, split):
    spec = data.REGISTRY[dataset]
    loaded = data.load(dataset, split)
    rows, distribution = expected(dataset, split)
    assert len(loaded.examples) == rows
    assert loaded.language == spec.language and loaded.labels == spec.labels
    assert all(isinstance(e.text, str) and e.text for e in loaded.examples)
    if dataset in PAIRS:
        assert all(isinstance(e.text_b, str) and e.text_b for e in loaded.examples)
    else:
        assert all(e.text_b is None for e in loaded.examples)
    if distribution is None:
        assert spec.splits[split].label is None
        assert not loaded.labelled and all(e.label is None for e in loaded.examples)
        return
    assert loaded.labelled
    assert all(type(e.label) is int and 0 <= e.label < len(spec.labels) for e in loaded.examples)
    # SOURCE.txt keys the distribution by label id ('0') or by label name ('positive').
    by_id = all(k.isdigit() for k in distribution)
    counted = Counter(str(e.label) if by_id else spec.labels[e.label] for e in loaded.examples)
    assert dict(counted) == distribution


@needs_shared
@pytest.mark.parametrize("dataset", ["agnews", "olid"])
def test_stray_spaces_in_labels_are_stripped(dataset):
    path = SHARED_DATA / dataset / "train.tsv"
    raw = [line.split("\t") for line in path.read_text(encoding="utf-8").split("\n")[1:] if line.strip()]
    assert any(fields[1] != fields[1].strip() for fields in raw)  # the file really has the spaces
    loaded = data.load(dataset, "train").examples
    assert [e.label for e in loaded] == [int(fields[1].strip()) for fields in raw]


@needs_shared
def test_imdb_is_read_through_gzip():
    path = SHARED_DATA / "imdb" / "test.tsv.gz"
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    first = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")[1].split("\t")
    loaded = data.load("imdb", "test").examples
    assert loaded[0].text == first[0].strip() and loaded[0].label == int(first[1])


def test_only_newline_ends_a_row(tmp_path):
    """IMDb reviews hold \\x85 and \\u2028, which str.splitlines() would treat as line ends."""
    f = tmp_path / "odd.tsv.gz"
    f.write_bytes(gzip.compress("sentence\tlabel\nsee\x85more\u2028here\t1\r\nfine\t0\n".encode("utf-8")))
    loaded = data.load(str(f), "all").examples
    assert [(e.text, e.label) for e in loaded] == [("see\x85more\u2028here", 1), ("fine", 0)]


@needs_shared
def test_list_datasets_counts_rows(cli):
    r = cli("list", "datasets")
    assert r.code == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert set(lines) == set(data.REGISTRY)
    for dataset, split in ALL_SPLITS:
        rows, _ = expected(dataset, split)
        assert re.search(rf"\b{split} {rows}\b", lines[dataset]), (dataset, split, lines[dataset])
    assert "test 1200 (unlabelled)" in lines["chnsenticorp"] and "test 10000 (unlabelled)" in lines["tnews"]


# --- malformed files: (file name, bytes, extra load options, line or None, what the message says) ---

MALFORMED = {
    "too-few-fields": ("rows.tsv", b"sentence\tlabel\ngood\t1\nno label here\nbad\t0\n", {}, 3, "expected 2 fields"),
    "missing-column": ("rows.jsonl", b'{"text": "a", "label": 1}\n{"text": "b"}\n', {}, 2, "missing column 'label'"),
    "empty-file": ("rows.tsv", b"\n  \n", {}, None, "empty file"),
    "not-utf8": ("rows.tsv", b"sentence\tlabel\ngood\t1\ncaf\xe9\t0\n", {}, 3, "not UTF-8"),
    "binary-nul": ("rows.tsv", b"sentence\tlabel\ngood\t1\nb\x00d\t0\n", {}, 3, "binary data"),
    "bad-json": ("rows.jsonl", b'{"text": "a", "label": 0}\n{"text": "b", label: 1}\n', {}, 2, "not a JSON object"),
    "json-array": ("rows.jsonl", b'{"text": "a", "label": 0}\n["b", 1]\n', {}, 2, "not a JSON object"),
    "empty-text": ("rows.tsv", b"sentence\tlabel\ngood\t1\n\t0\n", {}, 3, "empty text"),
    "csv-too-many": ("rows.csv", b'text,label\n"a, b",1\nc,0,extra\n', {}, 3, "expected 2 fields"),
    "not-gzip": ("rows.tsv.gz", b"sentence\tlabel\n", {}, None, "not a gzip file"),
    "no-such-label-column": ("rows.tsv", b"text\tlabel\na\t1\n", {"label_column": "labl"}, None,
                             "no column 'labl'"),
    "no-such-text-column": ("rows.tsv", b"text\tlabel\na\t1\n", {"text_column": "txt"}, 2, "missing column 'txt'"),
    "header-only": ("rows.tsv", b"sentence\tlabel\n", {}, None, "no examples"),
}


def _write(tmp_path, case) -> Path:
    name, content, *_ = MALFORMED[case]
    f = tmp_path / name
    f.write_bytes(content)
    return f


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_local_file_names_file_and_line(tmp_path, case):
    f = _write(tmp_path, case)
    _, _, options, line, what = MALFORMED[case]
    assert what  # "" is in every message
    with pytest.raises(UserError) as e:
        data.load(str(f), "all", **options)
    message = str(e.value)
    assert message.startswith(f"{f}:{line}: " if line else f"{f}")
    assert what in message


def _registered_root(tmp_path, dev: bytes) -> Path:
    (tmp_path / "root" / "sst2").mkdir(parents=True)
    (tmp_path / "root" / "sst2" / "dev.tsv").write_bytes(dev)
    return tmp_path / "root"


def test_unknown_label_in_registered_layout(tmp_path):
    root = _registered_root(tmp_path, b"sentence\tlabel\ngood\t1\nodd\t2\n")
    with pytest.raises(UserError, match=r"dev\.tsv:3: unknown label '2' \(labels: negative, positive\)"):
        data.load("sst2", "dev", root=str(root))


def test_missing_column_in_registered_layout_suggests_the_name(tmp_path):
    root = _registered_root(tmp_path, b"sentence\tlabl\ngood\t1\n")
    with pytest.raises(UserError, match=r"dev\.tsv:2: missing column 'label' \(did you mean 'labl'\?\)"):
        data.load("sst2", "dev", root=str(root))


def test_unknown_split_and_data_set_suggest_the_name():
    with pytest.raises(UserError, match=r"did you mean 'test'"):
        data.load("sst2", "tset")
    with pytest.raises(UserError, match=r"did you mean 'sst2'"):
        data.load("sst3", "dev")


CLI_CASES = ["too-few-fields", "missing-column", "empty-file", "not-utf8", "binary-nul", "bad-json",
             "no-such-label-column"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_malformed_file_through_cli_exits_2_with_one_line(tmp_path, cli, case):
    f = _write(tmp_path, case)
    _, _, options, line, what = MALFORMED[case]
    flags = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]
    r = cli("evaluate", "--model", "tiny-random-en", "--dataset", f, "--limit", "2", *flags,
            "--out", tmp_path / "run")
    assert r.code == 2
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {f}" + (f":{line}: " if line else "")) and what in err[0]
    assert not (tmp_path / "run").exists()  # nothing written before inputs are valid


def test_unknown_label_through_cli(tmp_path, cli):
    root = _registered_root(tmp_path, b"sentence\tlabel\ngood\t1\nodd\t7\n")
    r = cli("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--split", "dev", "--data-root", root)
    assert r.code == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {root / 'sst2' / 'dev.tsv'}:3: unknown label '7' "
                                             "(labels: negative, positive)"]


# --- local files ---

def test_local_tsv_with_named_columns(tmp_path):
    f = tmp_path / "reviews.tsv"
    f.write_text("id\treview\tsentiment\n1\tgreat film\tpos\n2\tdull\tneg\n3\tfine\tpos\n", encoding="utf-8")
    with pytest.raises(UserError, match="pass --text-column"):
        data.load(str(f), "all")
    split = data.load(str(f), "all", text_column="review", label_column="sentiment")
    assert split.labels == ("neg", "pos")
    assert [(e.text, e.label) for e in split.examples] == [("great film", 1), ("dull", 0), ("fine", 1)]
    assert split.language == "en"


def test_local_csv_with_quotes_and_ids(tmp_path):
    f = tmp_path / "rows.csv"
    f.write_text('text,label\n"a, quoted ""text""",1\nplain,0\n"x",2\n', encoding="utf-8")
    split = data.load(str(f), "all")
    assert split.labels == ("0", "1", "2")
    assert [(e.text, e.label) for e in split.examples] == [('a, quoted "text"', 1), ("plain", 0), ("x", 2)]


def test_local_jsonl_pairs_and_chinese(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"q1": "今天天气好", "q2": "天气不错", "same": 1}\n\n{"q1": "你好", "q2": "再见", "same": 0}\n',
                 encoding="utf-8")
    split = data.load(str(f), "all", text_column="q1", text_b_column="q2", label_column="same")
    assert [(e.text, e.text_b, e.label) for e in split.examples] == [("今天天气好", "天气不错", 1), ("你好", "再见", 0)]
    assert split.language == "zh"


def test_missing_local_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        data.load(str(tmp_path / "absent.tsv"), "x")


# --- data root precedence: --data-root > ADVKIT_DATA > ../shared/datasets ---

def _root_with_rows(path: Path, n: int) -> Path:
    (path / "sst2").mkdir(parents=True)
    (path / "sst2" / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(n)))
    return path


def test_data_root_precedence(tmp_path, monkeypatch):
    flag, env = _root_with_rows(tmp_path / "flag", 3), _root_with_rows(tmp_path / "env", 5)
    monkeypatch.setenv("ADVKIT_DATA", str(env))
    assert len(data.load("sst2", "dev", root=str(flag)).examples) == 3
    assert len(data.load("sst2", "dev").examples) == 5
    monkeypatch.delenv("ADVKIT_DATA")
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets"  # beside the repo (the cwd here)
    if default.is_dir():
        assert data.data_root().resolve() == default.resolve()
        assert len(data.load("sst2", "dev").examples) == 872
    else:  # no root at all: one line that says how to give one
        with pytest.raises(UserError, match="no data root"):
            data.load("sst2", "dev")
    with pytest.raises(UserError, match="--data-root"):
        data.load("sst2", "dev", root=str(tmp_path / "nowhere"))
    monkeypatch.setenv("ADVKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="ADVKIT_DATA"):
        data.load("sst2", "dev")


def test_data_root_precedence_through_cli(tmp_path, cli):
    flag, env = _root_with_rows(tmp_path / "flag", 3), _root_with_rows(tmp_path / "env", 5)
    r = cli("list", "datasets", "--data-root", flag, env={"ADVKIT_DATA": str(env)})
    assert r.code == 0 and re.search(r"^sst2 .*\bdev 3\b", r.stdout, re.M)
    assert re.search(r"^agnews .*\btrain missing\b", r.stdout, re.M)
    r = cli("list", "datasets", env={"ADVKIT_DATA": str(env)})
    assert r.code == 0 and re.search(r"^sst2 .*\bdev 5\b", r.stdout, re.M)
    r = cli("list", "datasets", "--data-root", tmp_path / "nowhere")
    assert r.code == 2 and r.stderr.startswith("error: --data-root") and "Traceback" not in r.stderr


# --- sample ---

def test_sample_is_deterministic_and_in_file_order():
    items = list(range(1000))
    a = data.sample(items, 50, seed=3)
    assert a == data.sample(items, 50, seed=3)
    assert len(a) == 50 and len(set(a)) == 50 and a == sorted(a)
    assert a != data.sample(items, 50, seed=4)
    assert data.sample(items, None) == items and data.sample(items, 5000) == items
    assert data.sample(items, 1000, seed=9) == items
