"""A user's own data (issue 14): one file split into disjoint parts, a folder of split files, bad rows,
English attacks that stay inside the victim's window, and a quiet first run."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, advkit, read_json

from advkit import data
from advkit.errors import UserError

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _csv(path, rows, header=("review", "sentiment")):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _rows(n, duplicates=0):
    rows = [(f"review number {i} is {'good' if i % 3 else 'bad'}", "pos" if i % 3 else "neg") for i in range(n)]
    return rows + rows[:duplicates]  # the same texts again, as real review dumps have


def test_one_file_splits_into_disjoint_stratified_stable_parts(tmp_path):
    f = _csv(tmp_path / "reviews.csv", _rows(300, duplicates=40))
    opts = dict(text_column="review", label_column="sentiment")
    parts = {s: data.load(str(f), s, **opts).examples for s in ("train", "dev", "test")}
    whole = data.load(str(f), "all", **opts).examples
    texts = {s: {e.text for e in ex} for s, ex in parts.items()}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    assert sum(len(ex) for ex in parts.values()) == len(whole) == 340  # every row in one part, duplicates included
    # 200 'pos' and 100 'neg' distinct texts: 10 % of each in dev and in test
    for s, n_pos, n_neg in (("dev", 20, 10), ("test", 20, 10)):
        distinct = {(e.text, e.label) for e in parts[s]}
        assert (sum(y == 1 for _, y in distinct), sum(y == 0 for _, y in distinct)) == (n_pos, n_neg)
    # stable: the same parts in another process (another command, another run)
    code = (f"from advkit import data; print(json.dumps([e.text for e in data.load({str(f)!r}, 'test', "
            "text_column='review', label_column='sentiment').examples]))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [e.text for e in parts["test"]]
    with pytest.raises(UserError, match="train, dev and test"):
        data.load(str(f), "validate", **opts)
    assert data.load(str(f), "validation", **opts).examples == parts["dev"]


def test_finetune_and_evaluate_on_one_csv_never_see_a_training_text(tmp_path):
    f = _csv(tmp_path / "reviews.csv", _rows(200, duplicates=30))
    cols = ["--text-column", "review", "--label-column", "sentiment"]
    r = advkit("finetune", "--model", "tiny-random-en", "--dataset", f, *cols, "--epochs", "1", "--max-length", "32",
               "--out", tmp_path / "ft", "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    doc = read_json(tmp_path / "ft" / "metrics.json")
    sizes = doc["provenance"]["data"][str(f)]["split_sizes"]
    assert doc["metrics"]["train_examples"] == sizes["train"] and doc["metrics"]["eval_examples"] == sizes["dev"]
    assert doc["metrics"]["eval_split"] == "dev" and sum(sizes.values()) == 230
    r = advkit("evaluate", "--model", tmp_path / "ft", "--dataset", f, *cols, "--out", tmp_path / "ev", "--quiet")
    assert r.code == 0, r.stderr
    evaluated = {json.loads(line)["text"] for line in (tmp_path / "ev" / "records.jsonl").read_text().splitlines()}
    train = {e.text for e in data.load(str(f), "train", text_column="review", label_column="sentiment").examples}
    assert read_json(tmp_path / "ev" / "metrics.json")["metrics"]["split"] == "test"
    assert evaluated and len(evaluated) <= sizes["test"]  # the test part's texts (duplicates once)
    assert not evaluated & train


def test_a_folder_of_split_files_is_a_data_set(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _csv(folder / "train.csv", [("good film", "pos"), ("bad film", "neg"), ("fine film", "pos")])
    _csv(folder / "validation.csv", [("dull", "neg")])  # only negatives: ids must still agree with train's
    (folder / "test.jsonl").write_text(json.dumps({"review": "great", "sentiment": "pos"}) + "\n")
    opts = dict(text_column="review", label_column="sentiment")
    dev = data.load(str(folder), "dev", **opts)
    assert dev.labels == ("neg", "pos") and [e.label for e in dev.examples] == [0]
    assert [e.label for e in data.load(str(folder), "test", **opts).examples] == [1]
    assert len(data.load(str(folder), "train", **opts).examples) == 3
    lines = data.describe(str(folder), **opts)
    assert lines[1].split()[:2] == ["train", "3"] and "neg 1, pos 2" in lines[1]
    (folder / "train.csv").unlink()
    with pytest.raises(UserError, match="no train file"):
        data.load(str(folder), "train", **opts)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="train.*, dev.*"):
        data.load(str(empty), "train")


def test_bad_rows_stop_with_the_way_on_or_are_skipped_and_counted(tmp_path, monkeypatch):
    f = _csv(tmp_path / "r.csv", [("good", "pos"), ("", "neg"), ("bad", "neg"), ("ok", "pos")])
    with pytest.raises(UserError, match=r"r.csv:3: empty text; .*--skip-bad-rows"):
        data.load(str(f), "all", text_column="review", label_column="sentiment")
    j = tmp_path / "r.jsonl"
    j.write_text("".join(json.dumps(r) + "\n" for r in [{"text": "fine", "label": 1}, {"text": None, "label": 0},
                                                          {"text": "meh", "label": None}, {"text": "dull", "label": 0}]))
    with pytest.raises(UserError, match=r"r.jsonl:2: null text"):  # not the review "None"
        data.load(str(j), "all")
    monkeypatch.setattr(data, "SKIP_BAD_ROWS", True)
    assert [e.text for e in data.load(str(j), "all").examples] == ["fine", "dull"]
    from advkit.results import DATA_NOTES

    assert DATA_NOTES[str(j)]["skipped_lines"] == [2, 3] and DATA_NOTES[str(j)]["skipped_rows"] == 2


@pytest.mark.shared_data("imdb")
def test_english_attacks_leave_words_past_the_window_alone(tmp_path):
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "imdb", "--split", "test", "--limit", "2",
               "--attack", "deepwordbug", "--max-length", "32", "--out", tmp_path / "a", "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    records = [json.loads(line) for line in (tmp_path / "a" / "records.jsonl").read_text().splitlines()]
    assert all(rec["words_outside_window"] > 100 for rec in records)  # reviews of hundreds of words, 32 tokens
    # every query changed a word inside the window: at most (visible words) x (4 edits) + the ranking's
    for rec in records:
        visible = rec["words"] - rec["words_outside_window"]
        assert 0 < rec["queries"] <= visible * 5 + 1
    m = read_json(tmp_path / "a" / "metrics.json")["metrics"]
    assert m["words_outside_window"] == sum(rec["words_outside_window"] for rec in records) / 2


def test_first_import_of_the_attack_path_is_quiet(tmp_path, tiny_en):
    """A fresh HOME and a closed network: no download attempt prints anything."""
    closed = {"HOME": str(tmp_path), "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    code = (f"from advkit.attacks import recipes\nfrom advkit.victim import Victim\n"
            f"recipes.build('pwws', Victim.load({str(tiny_en)!r}))\nprint('built')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, **closed})
    assert proc.returncode == 0 and proc.stdout.strip() == "built", proc.stderr[-2000:]
    assert "Error loading" not in proc.stderr and "Updating TextAttack" not in proc.stderr, proc.stderr[-2000:]
    assert (tmp_path / ".cache" / "textattack" / "post_install_check_3").is_file()
