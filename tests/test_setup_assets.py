"""A half-installed WordNet (index.sense missing, lexnames present: the copy that once crashed `make demo`
in the report card) is named in one line by the commands, and provided again by `make setup`'s step."""

import shutil
import subprocess
import sys

import pytest
from conftest import REPO, advkit

from advkit import assets


@pytest.fixture
def half_wordnet(tmp_path):
    nltk = tmp_path / "nltk_data"
    shutil.copytree(assets.nltk_dir(), nltk)
    (nltk / "corpora" / "wordnet" / "index.sense").unlink()
    (nltk / "corpora" / "wordnet" / "data.verb").write_bytes(b"")  # an interrupted copy: there, but empty
    assert (nltk / "corpora" / "wordnet" / "lexnames").is_file()  # what the old check trusted
    return nltk


@pytest.mark.shared_data("sst2")
@pytest.mark.parametrize("attack", ["pwws", "textfooler"])
def test_a_command_names_the_missing_file_and_make_setup(tmp_path, half_wordnet, attack):
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "2", "--attack", attack,
               "--out", tmp_path / "run", env={"NLTK_DATA": str(half_wordnet)})
    assert r.code == 2
    line = f"error: {attack} needs English WordNet: {half_wordnet / 'corpora' / 'wordnet' / 'index.sense'} is missing"
    assert r.stderr.startswith(line) and "(2 file(s) in all)" in r.stderr and "make setup" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_setup_checks_every_file_and_provides_what_is_missing(half_wordnet):
    env = {"NLTK_DATA": str(half_wordnet), "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "advkit.assets", *a], cwd=REPO, capture_output=True,
                                    text=True, env={**__import__("os").environ, **env}, timeout=600)
    check = run("--check")
    assert check.returncode == 1
    assert check.stdout.startswith("wordnet: missing ") and "index.sense" in check.stdout and "data.verb" in check.stdout
    fixed = run()
    assert fixed.returncode == 0, fixed.stderr
    assert "wordnet: missing" in fixed.stdout and "assets complete" in fixed.stdout
    wordnet = half_wordnet / "corpora" / "wordnet"
    assert (wordnet / "index.sense").stat().st_size > 0 and (wordnet / "data.verb").stat().st_size > 0
    assert run("--check").returncode == 0  # and a second setup has nothing left to do
