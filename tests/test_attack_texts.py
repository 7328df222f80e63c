"""`advkit attack` (issue 32): texts typed or listed in a file, attacked through the CLI on tiny models.

The victims are tiny random BERTs with a fresh two-way head (seeded, a wider initialisation so that
their predictions depend on the text, the bias centred so both labels occur), saved as model folders:
a fine-tuned tiny model predicts one label for every text and leaves nothing to attack. The English
one carries label names in its config (id2label), the Chinese one none (its labels print as ids).
"""

import json
import re

import pytest
from conftest import SHARED_DATA, advkit, read_json

from advkit import attack_texts, data
from advkit.results import atomic_write

# texts read in place from ../shared/datasets: skipped when missing, a failure under CI=true
pytestmark = [pytest.mark.shared_data("sst2"), pytest.mark.shared_data("thucnews")]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
MARK = re.compile(r"\[\[(.*?)->(.*?)\]\]")
# pwws succeeds on this text against the English victim below (seeded: the same on every machine)
TEXT = "the acting is wooden and the plot makes no sense."


def unmark(marked: str, side: int) -> str:
    """The text a marked adversarial text stands for: side 1 the original, side 2 the adversarial."""
    return MARK.sub(lambda m: m.group(side), marked)


def column(path, n: int, start: int, count: int) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[n] for line in lines[start : start + count]]


def random_victim(folder, alias: str, texts: list[str], **config_kwargs):
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    from advkit import models

    source = models.resolve(alias)
    config = AutoConfig.from_pretrained(source, num_labels=2, **config_kwargs)
    config.initializer_range = 0.3  # tiny-random's 0.02 gives the same output for every text
    config.architectures = None
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")).logits
        model.classifier.bias -= logits.mean(0)  # both labels predicted
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def victim_en(tmp_path_factory, one_thread):
    texts = column(SHARED_DATA / "sst2" / "train.tsv", 0, 1, 200)
    return random_victim(tmp_path_factory.mktemp("victim-en"), "tiny-random-en", texts,
                         id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})


@pytest.fixture(scope="module")
def victim_zh(tmp_path_factory, one_thread):
    texts = column(SHARED_DATA / "thucnews" / "train.txt", 0, 1000, 200)
    return random_victim(tmp_path_factory.mktemp("victim-zh"), "tiny-random-zh", texts)


def blocks(stdout: str) -> list[dict]:
    """The printout's per-text blocks: {status line, original, adversarial, label}."""
    found = []
    for block in stdout.strip().split("\n\n")[:-1]:  # the last paragraph is the summary line
        head, *rest = block.split("\n")
        found.append({"head": head, **{k.strip(): v for k, v in (line.split(": ", 1) for line in rest)}})
    return found


def test_one_text_prints_the_original_the_marked_adversarial_text_and_the_labels(victim_en, tmp_path):
    out = tmp_path / "run"
    r = advkit("attack", "--model", victim_en, "--attack", "pwws", "--text", TEXT, "--out", out, "--quiet",
               env=ONE_THREAD)
    assert r.code == 0, r.stderr
    [shown] = blocks(r.stdout)
    [record] = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert shown["head"].startswith("text 1: success") and record["status"] == "success"
    assert shown["original"].strip() == TEXT
    marked = shown["adversarial"].strip()
    # the changes are marked, and the marks hold exactly the original and the adversarial text
    assert MARK.search(marked) and unmark(marked, 1) == TEXT and unmark(marked, 2) == record["adversarial"] != TEXT
    # label names from the model's id2label; the label before is the model's own (no --label), and it flips
    before, after = (x.strip() for x in shown["label"].split(" -> "))
    names = ["negative", "positive"]
    assert (before, after) == (names[record["prediction_before"]], names[record["prediction_after"]])
    assert before != after and record["label"] == record["prediction_before"]
    assert record["label_from"] == "prediction"
    metrics = read_json(out / "metrics.json")
    assert metrics["command"] == "attack" and metrics["metrics"]["successes"] == 1
    assert metrics["metrics"]["attack_success_rate"] == 1.0
    # the example's quality, as evaluate --attack scores it: printed, recorded, averaged in the metrics
    assert -1 <= record["similarity"] <= 1 and record["fluency_ppl_after"] > 0 and record["fluency_ppl_before"] > 0
    assert shown["quality"].strip() == (f"similarity {record['similarity']:.3f}, fluency perplexity "
                                        f"{record['fluency_ppl_before']:.0f} -> {record['fluency_ppl_after']:.0f}")
    m = metrics["metrics"]
    assert m["similarity"] == record["similarity"] and m["similarity_n"] == 1 and m["similarity_model"] == "minilm-l6"
    # --min-similarity above this success's similarity: the search must find another or fail
    strict = tmp_path / "strict"
    r = advkit("attack", "--model", victim_en, "--attack", "pwws", "--text", TEXT, "--out", strict, "--quiet",
               "--min-similarity", f"{record['similarity'] + 0.01:.4f}", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    [again] = [json.loads(line) for line in (strict / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert again["adversarial"] != record["adversarial"]
    assert again["status"] != "success" or again["similarity"] >= record["similarity"] + 0.01 - 1e-6
    assert read_json(strict / "metrics.json")["config"]["min_similarity"] == pytest.approx(record["similarity"] + 0.01,
                                                                                           abs=1e-4)


def test_export_is_a_data_set_that_finetune_trains_on(victim_en, tmp_path):
    """--file with the true labels in its label column; the successes, with those labels, are exported."""
    rows = (SHARED_DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:41]  # header + 40
    source = tmp_path / "texts.tsv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    export, out = tmp_path / "adv" / "adversarial.tsv", tmp_path / "run"
    r = advkit("attack", "--model", victim_en, "--attack", "deepwordbug", "--file", source, "--export", export,
               "--out", out, "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    truth = [int(line.split("\t")[1]) for line in rows[1:]]
    assert [rec["label"] for rec in records] == truth and {rec["label_from"] for rec in records} == {"file"}
    successes = [rec for rec in records if rec["status"] == "success"]
    assert any(rec["status"] == "skipped" for rec in records)  # the victim is wrong on some: not attacked
    assert len(successes) >= 8, "too few successes to train on; the victim fixture changed"
    exported = data.load(str(export), "all")
    assert [e.text for e in exported.examples] == [rec["adversarial"] for rec in successes]
    # the true labels, which the model no longer predicts
    assert [int(exported.labels[e.label]) for e in exported.examples] == [rec["label"] for rec in successes]
    assert all(rec["prediction_after"] != rec["label"] for rec in successes)
    assert read_json(out / "metrics.json")["metrics"]["exported"] == len(successes)

    before = export.read_bytes()
    again = advkit("attack", "--model", victim_en, "--attack", "deepwordbug", "--file", source, "--export", export,
                   "--quiet", env=ONE_THREAD)
    assert again.code == 2 and "--overwrite" in again.stderr and export.read_bytes() == before

    trained = tmp_path / "trained"
    r = advkit("finetune", "--model", "tiny-random-en", "--dataset", export, "--epochs", "1", "--out", trained,
               "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    assert read_json(trained / "metrics.json")["metrics"]["train_examples"] > 0


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_every_export_format_reads_back_as_written(tmp_path, suffix):
    """Texts with commas, quotes, tabs and line breaks; failures are not exported."""
    texts = ['a "quoted", comma film', "tab\there", "two\nlines", "plain"]
    records = [{"status": "success", "adversarial": t, "label": i % 2} for i, t in enumerate(texts)]
    records.append({"status": "failed", "adversarial": None, "label": 1})
    path = tmp_path / f"adv{suffix}"
    atomic_write(path, attack_texts.export_text(records, suffix))
    split = data.load(str(path), "all")
    # TSV has no quoting here (advkit.data reads it as the corpora are written): tabs and breaks become spaces
    expected = [re.sub(r"[\t\n]", " ", t) if suffix == ".tsv" else t for t in texts]
    assert [e.text for e in split.examples] == expected
    assert [int(split.labels[e.label]) for e in split.examples] == [0, 1, 0, 1]


def test_a_chinese_generator_through_the_same_command(victim_zh, tmp_path):
    titles = column(SHARED_DATA / "thucnews" / "train.txt", 0, 2000, 6)
    source = tmp_path / "titles.txt"  # one text per line
    source.write_text("\n".join(titles) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    r = advkit("attack", "--model", victim_zh, "--attack", "zh-homophone", "--file", source, "--out", out,
               "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    shown = blocks(r.stdout)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [b["original"].strip() for b in shown] == titles == [rec["text"] for rec in records]
    successes = [(b, rec) for b, rec in zip(shown, records) if rec["status"] == "success"]
    assert successes, "no homophone swap fooled the victim; the fixture changed"
    for b, rec in successes:
        marked = b["adversarial"].strip()
        # each mark is one unit of attack-zh's search, and they rebuild both texts
        assert len(MARK.findall(marked)) == rec["changed_units"] >= 1
        assert unmark(marked, 1) == rec["text"] and unmark(marked, 2) == rec["adversarial"]
        # no label names in this model's config: ids; after the swap the model gives another label
        assert b["label"].strip() == f"{rec['prediction_before']} -> {rec['prediction_after']}"
        assert rec["prediction_after"] != rec["label"]
    assert read_json(out / "metrics.json")["metrics"]["attack"] == "zh-homophone"


def test_bad_input_is_one_line_and_exit_2(victim_en, tmp_path):
    existing = tmp_path / "taken.tsv"
    existing.write_text("sentence\tlabel\nkept\t1\n", encoding="utf-8")
    cases = [
        (["--attack", "pwws", "--text", "   "], "text 1 is empty"),
        (["--attack", "pwws", "--file", tmp_path / "missing.txt"], "no such file"),
        (["--attack", "pwsw", "--text", TEXT], "did you mean 'pwws'"),
        (["--attack", "pwws"], "--text"),
        (["--attack", "pwws", "--text", TEXT, "--label", "5"], "not one of the model's labels (0 negative, 1 positive)"),
        (["--attack", "pwws", "--text", "这部电影很好看"], "English attack"),
        (["--attack", "zh-glyph", "--text", TEXT], "attacks Chinese characters; this text has none"),
        (["--attack", "pwws", "--text", TEXT, "--export", tmp_path / "adv.txt"], ".tsv"),
        (["--attack", "pwws", "--text", TEXT, "--export", existing], "exists"),
        (["--attack", "pwws", "--text", TEXT, "--min-similarity", "1.5"], "--min-similarity must be between -1 and 1"),
        (["--attack", "zh-chars", "--text", "这部电影很好看", "--min-similarity", "0.5"], "English attack"),
    ]
    for args, message in cases:
        r = advkit("attack", "--model", victim_en, *args, "--quiet", env=ONE_THREAD)
        assert r.code == 2, (args, r.stderr)
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
    assert existing.read_text(encoding="utf-8") == "sentence\tlabel\nkept\t1\n"
