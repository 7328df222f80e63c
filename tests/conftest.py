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
SHARED_DATA = REPO.parent / "shared" / "datasets"


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
