"""The Python API (issue 32): `import advkit` stays light, settings are validated as the CLI validates
them, and the README's example runs and returns what metrics.json holds."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, read_json

import advkit
from advkit import cli, data
from advkit.attack_texts import AttackConfig
from advkit.evaluate import EvaluateConfig
from advkit.finetune.config import FinetuneConfig
from advkit.errors import UserError

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def python(code: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run code as a user's script would, with this checkout's advkit first on the path."""
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def test_import_advkit_is_light_and_has_a_function_per_command(tmp_path):
    code = """
import sys, types, advkit
heavy = lambda: sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'textattack'))
assert heavy() == [], heavy()[:5]
functions = [getattr(advkit, name) for name in advkit.__all__ if name.startswith(('run_', 'build_'))]
assert all(callable(f) for f in functions) and heavy() == [], heavy()[:5]
import advkit.finetune, advkit.attack_zh  # the subpackages are still there, under their own names
assert isinstance(advkit.finetune, types.ModuleType) and isinstance(advkit.attack_zh, types.ModuleType)
print(' '.join(f.__name__ for f in functions))
"""
    r = python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    from advkit import api

    assert r.stdout.split() == [f.__name__ for f in api.COMMANDS.values()]
    assert set(api.COMMANDS) == set(cli.COMMANDS)  # every command has its function


def test_settings_are_validated_as_the_command_line_validates_them(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UserError, match="unknown setting 'modle' \\(did you mean 'model'\\?\\)"):
        advkit.run_evaluate(modle="minilm-l6")
    with pytest.raises(UserError, match="epochs must be an integer, got '1'"):
        advkit.run_finetune(epochs="1", out=out)
    with pytest.raises(UserError, match="--method must be one of .* \\(did you mean 'knn'\\?\\)"):
        advkit.run_finetune(method="knm", out=out)
    with pytest.raises(UserError, match="--batch-size must be positive, got 0"):
        advkit.run_finetune(FinetuneConfig(batch_size=0), out=out)
    with pytest.raises(UserError, match="give the texts to attack"):
        advkit.run_attack(model="tiny-random-en", attack="pwws")
    with pytest.raises(TypeError, match="EvaluateConfig"):
        advkit.run_evaluate(FinetuneConfig())
    assert not out.exists()  # refused before anything was made


def test_keywords_take_python_values_and_a_dataclass_keeps_its_none():
    from advkit.api import _config

    cfg = _config(AttackConfig, None, None, {"model": Path("runs/ce"), "attack": "pwws", "text": "one text"})
    assert (cfg.model, cfg.text) == ("runs/ce", ["one text"])  # a Path is its text; one text is a list of one
    assert _config(FinetuneConfig, None, None, {"lr": 1}).lr == 1.0 and isinstance(
        _config(FinetuneConfig, None, None, {"lr": 1}).lr, float)
    # on the command line None means "not given"; a dataclass's None is its value (here: no checkpoints)
    kept = _config(FinetuneConfig, FinetuneConfig(checkpoint_seconds=None), None, {"epochs": 2})
    assert kept.checkpoint_seconds is None and kept.epochs == 2
    assert _config(FinetuneConfig, None, None, {"checkpoint_seconds": None}).checkpoint_seconds == 120


def test_a_config_and_keywords_together_and_switches_restored(tmp_path):
    """A dataclass with keywords over it; the process-wide switches the CLI sets are put back."""
    from advkit import progress

    cfg = EvaluateConfig(model="tiny-random-en", dataset="sst2", split="dev", limit=8)
    metrics, run = advkit.run_evaluate(cfg, limit=4, skip_bad_rows=True, out=tmp_path / "ev", quiet=True)
    written = read_json(tmp_path / "ev" / "metrics.json")
    assert run == tmp_path / "ev" and metrics == written["metrics"] and metrics["examples"] == 4
    assert written["config"]["limit"] == 4 and written["config"]["dataset"] == "sst2"
    assert cfg.limit == 8  # the caller's dataclass is not changed
    assert data.SKIP_BAD_ROWS is False and progress.QUIET is False
    metrics, run = advkit.run_evaluate(model=Path("tiny-random-en"), dataset="sst2", split="dev", limit=4, quiet=True)
    assert run is None and metrics["examples"] == 4  # no out: nothing written, the numbers returned


@pytest.mark.shared_data("sst2")
def test_the_readme_example_returns_what_metrics_json_holds(tmp_path):
    """The README's Python API example, on a tiny model and slices, then its numbers against the files."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## Python API.*?\n.*?```python\n(.*?)```", readme, re.S).group(1)
    for big, small in (('"minilm-l6"', '"tiny-random-en"'), ("train_limit=2000", "train_limit=64, limit=16"),
                       ("limit=30", "limit=3")):
        assert big in example, big
        example = example.replace(big, small)
    check = """
import json
from pathlib import Path
for metrics, run in ((trained, model_run), (attacked, attack_run)):
    assert isinstance(run, Path) and run.is_dir(), run
    written = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics == written, (metrics, written)
print("RUNS", model_run, attack_run)
"""
    r = python(example + check, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("dev accuracy ") and lines[1].startswith("PWWS on 3 test examples: accuracy ")
    assert lines[2] == "RUNS runs/api-ce runs/api-pwws"
    attacked = read_json(tmp_path / "runs" / "api-pwws" / "metrics.json")
    assert attacked["command"] == "evaluate" and attacked["config"]["attack"] == "pwws"
    assert json.loads(json.dumps(attacked["metrics"]))["examples"] == 3
