"""Shared fixtures: offline mode, a CLI runner, tiny random models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# The real data sets, where advkit itself looks for them: $ADVKIT_DATA, else ../shared/datasets.
SHARED_DATA = Path(os.environ["ADVKIT_DATA"]).resolve() if os.environ.get("ADVKIT_DATA") else (
    REPO.parent / "shared" / "datasets")
# CI sets CI=true (.ci/run does too): there a test that cannot run is a failure, never a skip.
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_data(*parts: str) -> Path:
    """SHARED_DATA (or a folder under it), or stop the test: a skip locally, a failure under CI=true."""
    path = SHARED_DATA.joinpath(*parts)
    if path.is_dir():
        return path
    message = (f"{path} is missing: this test needs the real data sets (../shared/datasets beside the repo, "
               "or $ADVKIT_DATA)")
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so a missing data set fails the run instead of skipping it", pytrace=False)
    pytest.skip(message)


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data(*folders): needs SHARED_DATA (or these folders under it); "
                                       "skipped when missing, a failure under CI=true")
    config.addinivalue_line("markers", "ci_may_skip: this test may skip under CI=true too (say why in a comment)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture of the test is built (they may need the data themselves)."""
    for mark in item.iter_markers("shared_data"):
        require_data(*mark.args)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true no test passes by skipping: any skip (a skipif, pytest.skip in a fixture, a model
    not installed) is turned into a failure that names its reason, unless the test is marked ci_may_skip."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and not item.get_closest_marker("ci_may_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"
    if IN_CI and report.failed and report.when == "setup" and "CI=true" in str(report.longrepr):
        report.advkit_ci_failure = True


def pytest_report_teststatus(report, config):
    """A test stopped under CI=true by missing data (or a skip) is a FAILED test, not a setup ERROR."""
    if getattr(report, "advkit_ci_failure", False):
        return "failed", "F", "FAILED"


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr


def advkit(*args, env=None, timeout=600) -> CliResult:
    """Run `advkit ARGS` in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "advkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)
    return CliResult(proc)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """SHARED_DATA for a fixture that reads it: a skip when missing, a failure under CI=true."""
    return require_data()


@pytest.fixture
def cli():
    return advkit


@pytest.fixture(scope="session")
def tiny_en() -> Path:
    from advkit import models

    return models.resolve("tiny-random-en")


@pytest.fixture(scope="session")
def tiny_zh() -> Path:
    from advkit import models

    return models.resolve("tiny-random-zh")


def read_json(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def one_thread():
    """Small forward passes on a busy 2-core machine: one torch thread is faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
