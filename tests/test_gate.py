"""The robustness gate (issue 32, item 5: `evaluate --require`) and the card's intervals (item 4): exit 0
when every requirement holds, 1 when one is missed (card and metrics written first), 2 for a malformed
requirement or a metric the run does not write."""

import re

import pytest

from advkit import gate, report
from advkit.errors import UserError
from advkit.stats import fmt_rate, wilson
from conftest import read_json

METRICS = {"clean_accuracy": 0.825, "examples": 40, "pwws": {"accuracy_under_attack": 0.05, "similarity": None},
           "clean": {"label_flip_rate_single": {"cf": 0.25}}, "attack": "pwws"}


@pytest.mark.parametrize("text", ["clean_accuracy", "clean_accuracy=>0.8", "clean_accuracy>=", ">=0.8",
                                  "clean_accuracy >= 0.8 extra", "clean accuracy>=0.8", "clean_accuracy!=0.8",
                                  "clean_accuracy>=eighty"])
def test_a_malformed_requirement_is_refused(text):
    with pytest.raises(UserError, match="expected METRIC OP NUMBER"):
        gate.parse(text)


def test_each_operator_and_the_line_of_a_miss():
    v = gate.judge(["clean_accuracy>=0.8", "clean_accuracy > 0.825", "examples<=40", "examples<40",
                    "examples==40", "pwws.accuracy_under_attack>=0.30", "clean.label_flip_rate_single.cf<0.5",
                    "clean_accuracy>=-1e-3"], METRICS)
    assert v["passed"] == ["clean_accuracy 0.825 >= 0.8", "examples 40 <= 40", "examples 40 == 40",
                           "clean.label_flip_rate_single.cf 0.25 < 0.5", "clean_accuracy 0.825 >= -1e-3"]
    # the value, the relation that holds instead, the threshold as typed
    assert v["failed"] == ["clean_accuracy 0.825 <= 0.825", "examples 40 >= 40",
                           "pwws.accuracy_under_attack 0.05 < 0.30"]
    assert v["outcome"] == "failed" and v["unknown"] == []
    assert gate.exit_status(v) == (1, ["gate: clean_accuracy 0.825 <= 0.825", "gate: examples 40 >= 40",
                                       "gate: pwws.accuracy_under_attack 0.05 < 0.30"])
    assert gate.exit_status(gate.judge(["examples==40"], METRICS)) == (0, ["gate: passed (1 requirement)"])
    assert gate.exit_status(None) == (0, [])


def test_an_unmeasured_metric_misses_and_an_absent_one_is_a_usage_error():
    v = gate.judge(["pwws.similarity>=0.8"], METRICS)
    assert v["failed"] == ["pwws.similarity n/a (not measured), required >= 0.8"]  # no evidence, no pass
    v = gate.judge(["pwws.accuracy_under_atack>=0.3", "attack>=1", "clean_accuracy>=0.5"], METRICS)
    assert v["outcome"] == "error" and v["passed"] == ["clean_accuracy 0.825 >= 0.5"]
    assert "no metric 'pwws.accuracy_under_atack' (did you mean 'pwws.accuracy_under_attack'?)" in v["unknown"][0]
    assert "is not a number" in v["unknown"][1]
    with pytest.raises(UserError, match="pwws.accuracy_under_atack"):
        gate.exit_status(v)


def test_names_are_checked_before_the_run_where_known():
    skeleton = {"clean_accuracy": 0, "pwws": {"accuracy_under_attack": 0}, "clean": gate.DEFER}
    gate.check_known(["pwws.accuracy_under_attack>=0.3", "clean.anything>=0", "clean_accuracy>=0.8"], skeleton)
    for wrong in ("bae.accuracy_under_attack>=0.3", "pwws.acc>=0.3", "clean_acc>=0.8"):
        with pytest.raises(UserError, match="this run writes no metric"):
            gate.check_known([wrong], skeleton)


def test_the_robustness_plot_has_wilson_error_bars():
    rows = [("pwws", 0.8, 0.1, 40), ("textfooler", 0.8, 0.35, 40)]
    fig = report.robustness_figure(rows, "t")
    from matplotlib.container import ErrorbarContainer

    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # clean and under attack, each with error bars
    for container, column in zip(bars, (1, 2)):
        segments = container.lines[2][0].get_segments()  # one vertical line per bar
        for (low, high), row in zip([(s[0][1], s[1][1]) for s in segments], rows):
            assert (low, high) == pytest.approx(wilson(round(row[column] * 40), 40))
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    from conftest import advkit

    out = tmp_path_factory.mktemp("victim") / "ce"
    r = advkit("finetune", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit", "2000", "--limit", "32",
               "--epochs", "2", "--lr", "2e-3", "--out", out, "--quiet")
    assert r.code == 0, r.stderr
    return out


CLEAN = ("evaluate", "--dataset", "sst2", "--split", "test", "--limit", "40", "--quiet")


@pytest.mark.shared_data("sst2")
def test_a_plain_run_passes_misses_or_refuses(cli, victim, tmp_path):
    args = (*CLEAN, "--model", victim)
    r = cli(*args, "--require", "accuracy>=0.1", "--require", "examples==40", "--out", tmp_path / "pass")
    assert r.code == 0, r.stderr
    v = read_json(tmp_path / "pass" / "metrics.json")["metrics"]["gate"]
    assert v["outcome"] == "passed" and v["requirements"] == ["accuracy>=0.1", "examples==40"]

    r = cli(*args, "--require", "accuracy>=0.1", "--require", "macro_f1>0.99", "--out", tmp_path / "miss")
    m = read_json(tmp_path / "miss" / "metrics.json")["metrics"]  # written before the verdict
    assert r.code == 1
    assert r.stderr.strip().splitlines() == [f"gate: macro_f1 {m['macro_f1']:.6g} <= 0.99"]
    assert m["gate"]["outcome"] == "failed" and m["gate"]["passed"] == [f"accuracy {m['accuracy']:.6g} >= 0.1"]

    # names a clean run writes are known once it ran: metrics kept, then the usage error
    r = cli(*args, "--require", "acuracy>=0.5", "--out", tmp_path / "typo")
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1 and "did you mean 'accuracy'" in r.stderr
    assert (tmp_path / "typo" / "metrics.json").is_file()
    # a malformed one, and an attack's unknown metric: refused before anything is made
    for bad in ("accuracy=>0.5", "accuracy_under_atack>=0.5"):
        r = cli(*args, "--attack", "deepwordbug", "--require", bad, "--out", tmp_path / "bad")
        assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: --require")
        assert not (tmp_path / "bad").exists()


@pytest.mark.shared_data("sst2")
def test_a_card_with_intervals_and_a_missed_gate(cli, victim, tmp_path):
    out = tmp_path / "card"
    card = ("evaluate", "--card", "--model", victim, "--dataset", "sst2", "--limit", "8", "--attack-encoder",
            "tiny-random-en", "--quiet")
    # an attack part the card does not run, refused before anything runs
    r = cli(*card, "--require", "bae.accuracy_under_attack>=0.3", "--out", out)
    assert r.code == 2 and "no metric 'bae.accuracy_under_attack'" in r.stderr and not out.exists()

    r = cli(*card, "--require", "clean_accuracy>=0.1", "--require", "pwws.accuracy_under_attack>=0.99",
            "--require", "deepwordbug.similarity>=-1", "--out", out)
    assert r.code == 1, r.stderr
    pwws = read_json(out / "pwws" / "metrics.json")["metrics"]
    clean = read_json(out / "clean" / "metrics.json")["metrics"]
    assert r.stderr.strip().splitlines() == [f"gate: pwws.accuracy_under_attack {pwws['accuracy_under_attack']:.6g} "
                                             f"< 0.99"]
    m = read_json(out / "metrics.json")["metrics"]
    assert m["gate"]["outcome"] == "failed" and len(m["gate"]["passed"]) == 2
    text = (out / "card.md").read_text()
    assert "## Gate: failed" in text and "- missed: pwws.accuracy_under_attack" in text

    # every rate of the card with its Wilson interval and n
    n = clean["examples"]
    assert f"| clean accuracy | {fmt_rate(round(clean['accuracy'] * n), n)} |" in text
    for name in ("pwws", "deepwordbug", "textfooler"):
        a = read_json(out / name / "metrics.json")["metrics"]
        attacked = a["successes"] + a["failures"]
        assert f"| accuracy under {name} | {fmt_rate(a['failures'], a['examples'])} |" in text
        assert f"success rate {fmt_rate(a['successes'], attacked)}" in text or not attacked
        assert re.search(rf"\| {name} \| {a['successes']} \| .* \(n={a['similarity_n']}\) \|", text)
    rates = re.findall(r"\d+\.\d \[\d+\.\d, \d+\.\d\] \(n=\d+\)", text)
    assert len(rates) >= 4 and not re.search(r"\| 0\.\d{4} \|", text)  # no bare rate left


def test_requirements_in_a_recipe(tmp_path):
    """A CI recipe can carry its thresholds: a TOML list of strings, each checked as on the command line."""
    from advkit.evaluate import EvaluateConfig
    from advkit.config import build

    path = tmp_path / "gate.toml"
    path.write_text('card = true\nrequire = ["clean_accuracy>=0.85", "pwws.accuracy_under_attack >= 0.3"]\n')
    assert build(EvaluateConfig, path, {}).require == ["clean_accuracy>=0.85", "pwws.accuracy_under_attack >= 0.3"]
    assert build(EvaluateConfig, path, {"require": ["examples==40"]}).require == ["examples==40"]  # flags win
    for text, message in (('require = "clean_accuracy>=0.85"\n', "must be a list of strings"),
                          ('require = ["clean_accuracy=>0.85"]\n', "expected METRIC OP NUMBER")):
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            build(EvaluateConfig, path, {})
