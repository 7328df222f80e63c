"""Bad input never gets a traceback (issue 7): every command, fed a malformed file, flag,
recipe, model or run directory, exits with code 2 and one `error:` line naming the file,
line or flag at fault, and leaves an existing run directory byte for byte as it was.

Most cases fail while the config and data are checked (no model is loaded); the few that
need a fine-tuned model share one tiny 2-label finetune run made once for the module.
"""

import hashlib
import json
from pathlib import Path

import pytest
from conftest import advkit

pytestmark = pytest.mark.shared_data  # ../shared/datasets: skipped when missing, a failure under CI=true


# ---------------------------------------------------------------------------- inputs


def _write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Every malformed input of the suite, made once."""
    d = tmp_path_factory.mktemp("bad")
    f = {
        "missing_column": _write(d / "missing_column.tsv", "sentence\tscore\na fine film\t1\na dull film\t0\n"),
        "no_text_column": _write(d / "no_text_column.tsv", "words\tlabel\na fine film\t1\n"),
        "few_fields": _write(d / "few_fields.tsv", "sentence\tlabel\na fine film\t1\na dull film\nbad\t0\n"),
        "empty": _write(d / "empty.tsv", ""),
        "blank": _write(d / "blank.tsv", "\n  \n\n"),
        "binary": _write(d / "binary.tsv", b"sentence\tlabel\n\x00\x01\x02\x03\xff\x00\t1\n"),
        "nul": _write(d / "nul.tsv", "sentence\tlabel\na fine film\t1\nab\x00cd\t0\n"),
        "latin1": _write(d / "latin1.tsv", "sentence\tlabel\nok film\t1\ncaf\xe9 film\t0\n".encode("latin-1")),
        "bad_json": _write(d / "bad.jsonl", '{"sentence": "a fine film", "label": 1}\n[1, 2]\n'),
        "three_labels": _write(d / "three.tsv", "sentence\tlabel\n" + "".join(
            f"film number {i}\t{i % 3}\n" for i in range(12))),
        "english": _write(d / "english.tsv", "sentence\tlabel\na fine film\t1\na dull film\t0\n"),
        "english_corpus": _write(d / "english.txt", "a plain English sentence\nand another one\n"),
        "latin1_corpus": _write(d / "latin1.txt", "caf\xe9 \xe0 la carte\n".encode("latin-1")),
        "recipe_unknown": _write(d / "unknown.toml", "epochs = 1\nepoch_count = 2\n"),
        "recipe_type": _write(d / "type.toml", 'epochs = "three"\n'),
        "recipe_toml": _write(d / "broken.toml", "epochs = = 1\n"),
        "recipe_table": _write(d / "table.toml", "[finetun]\nepochs = 1\n"),
        "not_a_model": d / "not_a_model",
        "a_file": _write(d / "a_file", "I am a plain file, not a folder\n"),
        "bad_metrics": _write(d / "bad_run" / "metrics.json", "{ not json"),
    }
    (f["not_a_model"]).mkdir()
    _write(f["not_a_model"] / "README.md", "weights went elsewhere\n")
    # A data root whose sst2 train file carries a label the data set does not have.
    root = d / "root"
    _write(root / "sst2" / "train.tsv", "sentence\tlabel\na fine film\t1\na dull film\tmaybe\n")
    _write(root / "sst2" / "dev.tsv", "sentence\tlabel\na fine film\t1\n")
    f["root"] = root
    return f


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> Path:
    """A 2-label tiny model: `finetune --model tiny-random-en --dataset sst2` for one short epoch."""
    out = tmp_path_factory.mktemp("ft") / "run"
    r = advkit("finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", 32, "--limit", 16,
               "--epochs", 1, "--out", out, "--quiet")
    assert r.code == 0, r.stderr
    return out


def make_run(path: Path, command: str) -> Path:
    """A finished-looking run directory of `command` (what a user would not want lost)."""
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"command": command, "config": {}}), encoding="utf-8")
    (path / "metrics.json").write_text(json.dumps({"command": command, "metrics": {"accuracy": 0.5}}),
                                       encoding="utf-8")
    (path / "records.jsonl").write_text('{"index": 0}\n', encoding="utf-8")
    (path / "model").mkdir()
    (path / "model" / "weights.bin").write_bytes(bytes(range(256)))
    return path


def digest(folder: Path) -> dict:
    """Every file under `folder` (names and bytes), to show nothing was touched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


# ---------------------------------------------------------------------------- the cases
#
# (id, command-line with placeholders, the text the one error line must name, the command
# owning the run directory given as --out or None). Placeholders: {name} is a file of
# `files`, {out} a pre-existing run directory, {ft} the fine-tuned 2-label run.

EN = ["--model", "tiny-random-en"]
ZH = ["--model", "tiny-random-zh"]
OUT = ["--out", "{out}", "--overwrite"]  # --overwrite: only the bad input may stop the run from wiping it

CASES = [
    # finetune: data files
    ("finetune-missing-column", ["finetune", *EN, "--dataset", "{missing_column}", *OUT], "missing_column.tsv",
     "finetune"),
    ("finetune-missing-label-column-flag", ["finetune", *EN, "--dataset", "{english}", "--label-column", "y", *OUT],
     "english.tsv", "finetune"),
    ("finetune-no-text-column", ["finetune", *EN, "--dataset", "{no_text_column}", *OUT], "--text-column",
     "finetune"),
    ("finetune-too-few-fields", ["finetune", *EN, "--dataset", "{few_fields}", *OUT], "few_fields.tsv:3",
     "finetune"),
    ("finetune-unknown-label", ["finetune", *EN, "--data-root", "{root}", "--dataset", "sst2", *OUT],
     "train.tsv:3", "finetune"),
    ("finetune-empty-file", ["finetune", *EN, "--dataset", "{empty}", *OUT], "empty.tsv", "finetune"),
    ("finetune-blank-file", ["finetune", *EN, "--dataset", "{blank}", *OUT], "blank.tsv", "finetune"),
    ("finetune-binary-file", ["finetune", *EN, "--dataset", "{binary}", *OUT], "binary.tsv:2", "finetune"),
    ("finetune-nul-bytes", ["finetune", *EN, "--dataset", "{nul}", *OUT], "nul.tsv:3", "finetune"),
    ("finetune-non-utf8", ["finetune", *EN, "--dataset", "{latin1}", *OUT], "latin1.tsv:3", "finetune"),
    ("finetune-jsonl-not-object", ["finetune", *EN, "--dataset", "{bad_json}", *OUT], "bad.jsonl:2", "finetune"),
    # finetune: recipes and sizes
    ("finetune-recipe-unknown-key", ["finetune", "--recipe", "{recipe_unknown}", *OUT], "epoch_count", "finetune"),
    ("finetune-recipe-wrong-type", ["finetune", "--recipe", "{recipe_type}", *OUT], "epochs", "finetune"),
    ("finetune-recipe-not-toml", ["finetune", "--recipe", "{recipe_toml}", *OUT], "broken.toml", "finetune"),
    ("finetune-recipe-unknown-table", ["finetune", "--recipe", "{recipe_table}", *OUT], "finetun", "finetune"),
    ("finetune-epochs-zero", ["finetune", *EN, "--epochs", "0", *OUT], "--epochs", "finetune"),
    ("finetune-batch-size-negative", ["finetune", *EN, "--batch-size", "-1", *OUT], "--batch-size", "finetune"),
    ("finetune-epochs-not-a-number", ["finetune", *EN, "--epochs", "two", *OUT], "--epochs", "finetune"),
    ("finetune-unknown-method", ["finetune", *EN, "--method", "knnn", *OUT], "knn", "finetune"),
    ("finetune-unknown-device", ["finetune", *EN, "--device", "tpu", *OUT], "--device", "finetune"),
    ("finetune-model-missing", ["finetune", "--model", "/no/such/model", "--dataset", "sst2", "--limit", "4",
                                "--train-limit", "4", *OUT], "/no/such/model", "finetune"),
    ("finetune-unknown-dataset-close", ["finetune", *EN, "--dataset", "sst3", *OUT], "sst2", "finetune"),
    ("finetune-unknown-split", ["finetune", *EN, "--train-split", "training", *OUT], "training", "finetune"),
    ("finetune-out-under-file", ["finetune", *EN, "--train-limit", "4", "--limit", "4", "--epochs", "1",
                                 "--out", "{a_file}/sub"], "a_file", None),
    ("finetune-existing-run-no-overwrite", ["finetune", *EN, "--train-limit", "4", "--out", "{out}"], "--overwrite",
     "finetune"),
    ("finetune-data-root-without-the-set", ["finetune", *EN, "--data-root", "{not_a_model}", *OUT],
     "--data-root", "finetune"),
    ("finetune-seeds-not-integers", ["finetune", *EN, "--seeds", "1,x", *OUT], "--seeds", "finetune"),
    ("finetune-recipe-is-a-folder", ["finetune", "--recipe", "{not_a_model}", *OUT], "not_a_model", "finetune"),
    ("finetune-reinit-negative", ["finetune", *EN, "--reinit-layers", "-1", *OUT], "--reinit-layers", "finetune"),
    ("finetune-reinit-too-many", ["finetune", *EN, "--reinit-layers", "9", "--train-limit", "4", "--limit", "4", *OUT],
     "--reinit-layers 9", "finetune"),
    ("finetune-checkpoint-seconds-negative", ["finetune", *EN, "--checkpoint-seconds", "-1", *OUT],
     "--checkpoint-seconds", "finetune"),
    ("finetune-weight-decay-negative", ["finetune", *EN, "--weight-decay", "-0.1", *OUT], "--weight-decay",
     "finetune"),
    ("finetune-resume-evaluate-run", ["finetune", *EN, "--resume", "--out", "{out}"], "evaluate", "evaluate"),
    ("finetune-resume-nothing", ["finetune", *EN, "--resume", "--out", "{not_a_model}/empty"], "--resume", None),
    # evaluate
    ("evaluate-zh-attack-on-english", ["evaluate", *EN, "--dataset", "sst2", "--limit", "2", "--attack", "zh-chars",
                                       *OUT], "Chinese", "evaluate"),
    ("evaluate-onion-lm-missing", ["evaluate", *EN, "--limit", "2", "--onion-lm", "/no/such/lm", *OUT],
     "/no/such/lm", "evaluate"),
    ("evaluate-onion-lm-without-mlm-head", ["evaluate", *EN, "--limit", "2", "--onion-lm", "minilm-l6", *OUT],
     "--onion-lm", "evaluate"),
    ("evaluate-defence-without-trigger", ["evaluate", *EN, "--limit", "2", "--defence", "strip", *OUT], "--trigger",
     "evaluate"),
    ("evaluate-unknown-defence", ["evaluate", *EN, "--limit", "2", "--trigger", "cf", "--target", "1", "--defence",
                                  "stirp", *OUT], "strip", "evaluate"),
    ("evaluate-dataset-is-a-folder", ["evaluate", *EN, "--dataset", "{not_a_model}", *OUT], "not_a_model",
     "evaluate"),
    ("evaluate-limit-zero", ["evaluate", *EN, "--limit", "0", *OUT], "--limit", "evaluate"),
    ("evaluate-not-a-model-folder", ["evaluate", "--model", "{not_a_model}", "--limit", "4", *OUT], "not_a_model",
     "evaluate"),
    ("evaluate-unknown-split-close", ["evaluate", *EN, "--split", "dve", *OUT], "dev", "evaluate"),
    ("evaluate-unknown-attack", ["evaluate", *EN, "--split", "dev", "--limit", "2", "--attack", "pwwz", *OUT],
     "pwws", "evaluate"),
    ("evaluate-attack-on-chinese", ["evaluate", *ZH, "--dataset", "chnsenticorp", "--split", "dev", "--limit", "2",
                                    "--attack", "pwws", *OUT], "--attack", "evaluate"),
    ("evaluate-trigger-without-target", ["evaluate", *EN, "--trigger", "cf bb", *OUT], "--target", "evaluate"),
    ("evaluate-scan-negative", ["evaluate", *EN, "--trigger", "cf", "--target", "1", "--scan", "-5", *OUT],
     "--scan", "evaluate"),
    ("evaluate-card-with-attack", ["evaluate", *EN, "--card", "--attack", "pwws", *OUT], "--card", "evaluate"),
    ("evaluate-card-without-out", ["evaluate", *EN, "--card", "--limit", "2", "--split", "dev"], "--out", None),
    ("evaluate-unlabelled-split", ["evaluate", *ZH, "--dataset", "chnsenticorp", "--split", "test", *OUT],
     "unlabelled", "evaluate"),
    ("evaluate-labels-model-lacks", ["evaluate", "--model", "{ft}", "--dataset", "{three_labels}", *OUT],
     "three.tsv", "evaluate"),
    ("evaluate-target-beyond-labels", ["evaluate", "--model", "{ft}", "--split", "dev", "--limit", "8", "--trigger",
                                       "cf", "--target", "5", *OUT], "--target 5", "evaluate"),
    ("evaluate-resume-finetune-run", ["evaluate", *EN, "--attack", "pwws", "--resume", "--out", "{ft}"],
     "finetune", None),
    ("evaluate-resume-other-command", ["evaluate", *EN, "--attack", "pwws", "--resume", "--out", "{out}"],
     "attack-zh", "attack-zh"),
    # poison
    ("poison-rate-above-one", ["poison", *EN, "--poison-rate", "1.5", *OUT], "--poison-rate", "poison"),
    ("poison-combination-too-big", ["poison", *EN, "--triggers", "cf bb", "--combination-size", "3", *OUT],
     "--combination-size", "poison"),
    ("poison-unknown-mode", ["poison", *EN, "--mode", "lwpp", *OUT], "lwp", "poison"),
    ("poison-empty-triggers", ["poison", *EN, "--triggers", " ", *OUT], "--triggers", "poison"),
    ("poison-negative-target", ["poison", *EN, "--target", "-1", *OUT], "--target", "poison"),
    ("poison-recipe-wrong-type", ["poison", *EN, "--recipe", "{recipe_type}", *OUT], "epochs", "poison"),
    ("poison-missing-column", ["poison", *EN, "--dataset", "{missing_column}", "--train-limit", "4", *OUT],
     "missing_column.tsv", "poison"),
    ("poison-repeated-trigger", ["poison", *EN, "--triggers", "cf cf", "--combination-size", "1", *OUT],
     "--triggers 'cf cf'", "poison"),
    ("poison-target-beyond-labels", ["poison", *EN, "--target", "5", "--train-limit", "8", *OUT], "--target 5",
     "poison"),
    ("poison-unknown-victim-dataset", ["poison", *EN, "--victim-dataset", "sst3", "--train-limit", "8", *OUT],
     "sst2", "poison"),
    # attack-zh
    ("attack-zh-english-text", ["attack-zh", *ZH, "--dataset", "{english}", *OUT], "english.tsv", "attack-zh"),
    ("attack-zh-english-dataset", ["attack-zh", *ZH, "--dataset", "sst2", "--limit", "4", *OUT], "sst2",
     "attack-zh"),
    ("attack-zh-no-model", ["attack-zh", "--limit", "2", *OUT], "--model", "attack-zh"),
    ("attack-zh-unknown-substitutes", ["attack-zh", *ZH, "--substitutes", "piecez", *OUT], "pieces", "attack-zh"),
    ("attack-zh-unknown-label-check", ["attack-zh", *ZH, "--label-check", "strict", *OUT], "lexicon", "attack-zh"),
    ("attack-zh-max-perturb-zero", ["attack-zh", *ZH, "--max-perturb", "0", *OUT], "--max-perturb", "attack-zh"),
    ("attack-zh-limit-zero", ["attack-zh", *ZH, "--limit", "0", *OUT], "--limit", "attack-zh"),
    ("attack-zh-binary-file", ["attack-zh", *ZH, "--dataset", "{binary}", *OUT], "binary.tsv", "attack-zh"),
    ("attack-zh-resume-finetune-run", ["attack-zh", *ZH, "--resume", "--out", "{out}"], "finetune", "finetune"),
    # build-piece-lm
    ("piece-lm-english-corpus", ["build-piece-lm", "--tiny", "--corpus", "{english_corpus}", *OUT],
     "english.txt", "build-piece-lm"),
    ("piece-lm-non-utf8-corpus", ["build-piece-lm", "--tiny", "--corpus", "{latin1_corpus}", *OUT],
     "latin1.txt", "build-piece-lm"),
    ("piece-lm-missing-corpus", ["build-piece-lm", "--tiny", "--corpus", "/no/such/corpus.txt", *OUT],
     "/no/such/corpus.txt", "build-piece-lm"),
    ("piece-lm-coverage", ["build-piece-lm", "--tiny", "--character-coverage", "0.5", *OUT],
     "--character-coverage", "build-piece-lm"),
    ("piece-lm-steps-zero", ["build-piece-lm", "--tiny", "--steps", "0", *OUT], "--steps", "build-piece-lm"),
    # table, report, list
    ("table-missing-run", ["table", "/no/such/run", "--cols", "accuracy"], "/no/such/run", None),
    ("table-bad-metrics", ["table", "{bad_metrics}", "--cols", "accuracy"], "metrics.json", None),
    ("table-out-under-file", ["table", "{out}", "--cols", "accuracy", "--out", "{a_file}/t.md"], "a_file",
     "evaluate"),
    ("report-not-a-run", ["report", "{not_a_model}", "--out", "{out}"], "not_a_model", "evaluate"),
    ("report-out-under-file", ["report", "{out}", "--out", "{a_file}/report"], "a_file", "evaluate"),
    ("report-no-new-folder-for-bad-runs", ["report", "/no/such/run", "--out", "{out}/new"], "/no/such/run",
     "evaluate"),
    ("attack-unknown-attack", ["attack", *EN, "--attack", "pwwz", "--text", "a fine film", *OUT], "pwwz", "evaluate"),
    ("attack-empty-text", ["attack", *EN, "--attack", "pwws", "--text", " ", *OUT], "--text", "evaluate"),
    ("list-unknown-what", ["list", "modelz"], "modelz", None),
    ("list-datasets-bad-root", ["list", "datasets", "--data-root", "/no/such/root"], "--data-root", None),
]


@pytest.mark.parametrize("args, names, owner", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(args, names, owner, files, tmp_path, request):
    places = {k: str(v) for k, v in files.items()}
    if any("{ft}" in a for a in args):
        places["ft"] = str(request.getfixturevalue("finetuned"))
    run = make_run(tmp_path / "existing", owner) if owner else None
    places["out"] = str(run) if run else str(tmp_path / "unused")
    before = digest(run) if run else None
    ft_before = digest(Path(places["ft"])) if "ft" in places else None

    quiet = [] if args[0] in ("table", "report", "list") else ["--quiet"]
    r = advkit(*[a.format(**places) for a in args], *quiet)

    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.code == 2, (r.code, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and len(lines[0]) > len("error: ")
    assert names.format(**places) in lines[0], lines[0]
    if run:
        assert digest(run) == before
    if ft_before:
        assert digest(Path(places["ft"])) == ft_before


def test_every_command_has_cases():
    """Every command the CLI registers (read from the app: a new command fails here until it has
    cases) has at least two, and no two cases share an id (pytest would rename a duplicate)."""
    from collections import Counter

    from typer.main import get_command

    from advkit.cli import app

    commands = set(get_command(app).commands)
    per_command = Counter(c[1][0] for c in CASES)
    assert set(per_command) == commands, sorted(commands ^ set(per_command))
    assert min(per_command.values()) >= 2, per_command
    assert [i for i, n in Counter(c[0] for c in CASES).items() if n > 1] == []


def test_missing_wordnet_is_one_error_line_and_stop_words_are_written(tmp_path):
    """A checkout without `make setup`'s NLTK data: PWWS says what to run; the stop words, which
    `import textattack` reads and advkit ships, are written instead of a traceback."""
    nltk = tmp_path / "nltk"
    nltk.mkdir()
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "4", "--attack", "pwws",
               "--out", tmp_path / "out", "--quiet", env={"NLTK_DATA": str(nltk)})
    assert r.code == 2 and r.stderr.strip() == (
        f"error: pwws needs English WordNet: {nltk / 'corpora' / 'wordnet' / 'lexnames'} is missing (14 file(s) in "
        "all): run `make setup` (or point NLTK_DATA at a complete nltk_data folder)")
    assert not (tmp_path / "out").exists()
    assert len((nltk / "corpora" / "stopwords" / "english").read_text().split()) == 179
