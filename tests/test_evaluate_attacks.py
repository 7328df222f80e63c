"""English attacks, the report card, tables and resume (issue 6), on tiny random models."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from advkit import metrics, report
from conftest import REPO, read_json

CLOSED_PORT = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def victim_run(tmp_path_factory, tiny_en):
    """A tiny English classifier fine-tuned for a few steps on SST-2."""
    from conftest import advkit

    out = tmp_path_factory.mktemp("victim") / "ce"
    r = advkit("finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "128", "--limit", "32",
               "--epochs", "1", "--lr", "1e-3", "--out", out, "--quiet")
    assert r.code == 0, r.stderr
    return out


def test_attack_metrics_exclude_skipped():
    records = [{"status": "success", "queries": 10, "perturbed_word_ratio": 0.2},
               {"status": "failed", "queries": 30, "perturbed_word_ratio": 0.0},
               {"status": "skipped", "queries": 0, "perturbed_word_ratio": 0.0},
               {"status": "success", "queries": 20, "perturbed_word_ratio": 0.4}]
    m = metrics.attack_metrics(records)
    assert m["attack_success_rate"] == pytest.approx(2 / 3)  # over the 3 inputs classified right
    assert m["accuracy_before"] == pytest.approx(3 / 4)
    assert m["accuracy_under_attack"] == pytest.approx(1 / 4)
    assert m["skipped"] == 1
    assert m["avg_queries"] == pytest.approx(20.0)
    assert m["perturbed_word_ratio"] == pytest.approx(0.3)  # over successes only


def test_every_attack_builds_offline(tiny_en):
    """Each recipe builds and attacks one example with every proxy pointed at a closed port."""
    script = f"""
from advkit import models
from advkit.attacks import ATTACKS, recipes as attacks
from advkit.data import Example
from advkit.victim import Victim
v = Victim.load({str(tiny_en)!r})
text = "a gripping , funny and moving film"
# Labelled with the untrained model's own prediction: classified right, so every recipe really
# searches (a misclassified example would be skipped and prove nothing).
label = int(v.predict_proba([text]).argmax(1)[0])
for name in ATTACKS:
    attack, note = attacks.build(name, v, lm={str(tiny_en)!r}, encoder={str(tiny_en)!r})
    rec = attacks.attack_one(attack, Example(text, label), 0)
    assert rec["status"] in ("success", "failed") and rec["queries"] > 0, rec
    assert rec["original_prediction"] == label, rec
    print(name, rec["status"])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **CLOSED_PORT}, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split()[0] for line in proc.stdout.split("\n") if line.strip()] == list(
        ("pwws", "deepwordbug", "textfooler", "bert-attack", "bae"))


def test_unknown_attack_and_missing_lm_are_user_errors(cli, victim_run, tmp_path):
    r = cli("evaluate", "--model", victim_run, "--dataset", "sst2", "--limit", "2", "--attack", "pwsw")
    assert r.code == 2 and "did you mean 'pwws'" in r.stderr and "Traceback" not in r.stderr
    r = cli("evaluate", "--model", victim_run, "--dataset", "sst2", "--limit", "2", "--attack", "bae")
    assert r.code == 2 and "--attack-lm" in r.stderr
    r = cli("evaluate", "--model", victim_run, "--dataset", "chnsenticorp", "--limit", "2", "--attack", "pwws")
    assert r.code == 2 and "attack-zh" in r.stderr


def _attack(cli, model, out, *extra):
    return cli("evaluate", "--model", model, "--dataset", "sst2", "--split", "test", "--limit", "12", "--attack",
               "deepwordbug", "--out", out, "--quiet", *extra)


def _numbers(path):
    return read_json(path / "metrics.json")["metrics"]


def test_resume_after_sigkill_gives_the_same_records(cli, victim_run, tmp_path):
    full = tmp_path / "full"
    assert _attack(cli, victim_run, full).code == 0
    expected = (full / "records.jsonl").read_text()
    assert len(expected.splitlines()) == 12

    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-m", "advkit.cli", "evaluate", "--model", str(victim_run), "--dataset",
                             "sst2", "--split", "test", "--limit", "12", "--attack", "deepwordbug", "--out", str(part),
                             "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        f = part / "records.jsonl"
        if f.is_file() and len(f.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len((part / "records.jsonl").read_text().splitlines())
    # Killed mid-run: still running when the signal came, at least 3 examples done and the run not finished
    # (at most every record written, the metrics not: a run of skipped examples can be that fast).
    assert proc.returncode == -signal.SIGKILL and not (part / "metrics.json").exists()
    # What it had written: the whole run's first records, the last one perhaps cut by the kill.
    lines, want = (part / "records.jsonl").read_text().splitlines(), expected.splitlines()
    assert 3 <= done <= 12 and lines[:-1] == want[: done - 1] and want[done - 1].startswith(lines[-1])
    with open(part / "records.jsonl", "a") as f:
        f.write('{"index": 99, "torn')  # a half-written line, as a kill mid-write leaves

    assert _attack(cli, victim_run, part).code == 2  # refuses to overwrite without --resume
    r = _attack(cli, victim_run, part, "--resume")
    assert r.code == 0, r.stderr
    assert (part / "records.jsonl").read_text() == expected
    assert _numbers(part) == {**_numbers(full), "model": _numbers(part)["model"]}


def test_resume_refuses_another_command_or_config(cli, victim_run, tmp_path):
    r = cli("evaluate", "--model", victim_run, "--dataset", "sst2", "--limit", "3", "--attack", "deepwordbug",
            "--out", victim_run, "--resume")
    assert r.code == 2 and "finetune" in r.stderr
    out = tmp_path / "a"
    assert _attack(cli, victim_run, out).code == 0
    r = cli("evaluate", "--model", victim_run, "--dataset", "sst2", "--split", "test", "--limit", "5", "--attack",
            "deepwordbug", "--out", out, "--resume")
    assert r.code == 2 and "limit" in r.stderr


def test_card_and_tables(cli, victim_run, tmp_path):
    out = tmp_path / "card"
    r = cli("evaluate", "--card", "--model", victim_run, "--dataset", "sst2", "--limit", "6", "--attack-encoder",
            "tiny-random-en", "--out", out, "--quiet")
    assert r.code == 0, r.stderr
    card = (out / "card.md").read_text()
    for name in ("clean accuracy", "pwws", "deepwordbug", "textfooler"):
        assert name in card
    assert (out / "robustness.png").stat().st_size > 1000
    m = read_json(out / "metrics.json")["metrics"]
    assert m["clean_accuracy"] == _numbers(out / "clean")["accuracy"]
    assert m["accuracy_under_pwws"] == _numbers(out / "pwws")["accuracy_under_attack"]

    md = report.table([str(out / "pwws"), str(out / "deepwordbug")], "run", "attack_success_rate,avg_queries")
    lines = md.splitlines()
    assert lines[0] == "| run | attack_success_rate | avg_queries |"
    assert lines[2].startswith("| pwws | ") and f"{_numbers(out / 'pwws')['attack_success_rate']:.4f}" in lines[2]
    tex = report.table([str(out / "pwws")], "model", "attack", value="accuracy_under_attack", latex=True)
    assert "\\begin{tabular}{lr}" in tex and "pwws" in tex

    r = cli("report", *(out / n for n in ("clean", "pwws", "deepwordbug")), "--out", tmp_path / "rep")
    assert r.code == 0 and (tmp_path / "rep" / "robustness.png").is_file()


def test_table_pivot_on_fixture_metrics(tmp_path):
    runs = []
    for method, attack, acc in [("ce", "pwws", 0.1), ("ce", "textfooler", 0.2), ("knn", "pwws", 0.3)]:
        d = tmp_path / f"{method}-{attack}"
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"command": "evaluate", "metrics": {"accuracy_under_attack": acc},
                                                    "config": {"method": method, "attack": attack}}))
        runs.append(str(d))
    md = report.table(runs, "method", "attack", value="accuracy_under_attack")
    assert md.splitlines() == ["| method | pwws | textfooler |", "|---|---|---|",
                               "| ce | 0.1000 | 0.2000 |", "| knn | 0.3000 | – |"]


def test_transfer_from_evaluates_the_attacks_successes_paired_by_index(cli, victim_run, tmp_path):
    """--transfer-from: the adversarial texts an attack run found (its records), fed to a model."""
    attacked = tmp_path / "attacked"
    attacked.mkdir()
    records = [{"index": i, "label": i % 2, "status": status, "original": f"a film number {i}",
                "adversarial": f"a flim numbre {i}" if status == "success" else None}
               for i, status in enumerate(["success", "failed", "success", "skipped", "success"])]
    (attacked / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "transfer"
    r = cli("evaluate", "--model", victim_run, "--transfer-from", attacked, "--out", out, "--quiet")
    assert r.code == 0, r.stderr
    assert f"on the adversarial examples of {attacked}" in r.stdout
    m = read_json(out / "metrics.json")["metrics"]
    got = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert m["examples"] == 3 and m["transfer_from"] == str(attacked)
    assert [g["attack_index"] for g in got] == [0, 2, 4]
    assert [g["text"] for g in got] == ["a flim numbre 0", "a flim numbre 2", "a flim numbre 4"]
    assert [g["label"] for g in got] == [0, 0, 0]
    assert m["accuracy"] == sum(g["prediction"] == 0 for g in got) / 3
    # a run without adversarial texts, and a combination that makes no sense: one line, exit 2, nothing written
    for args, message in ((["--transfer-from", victim_run], "its records hold no adversarial texts"),
                          (["--transfer-from", attacked, "--attack", "pwws"], "does not combine with --attack")):
        r = cli("evaluate", "--model", victim_run, *args, "--out", tmp_path / "bad", "--quiet")
        assert r.code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
