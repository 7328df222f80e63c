"""Each table recipe, run dry against the committed results: advkit replaced by a stub that only logs its
arguments, the recipe's ROOT a folder of links to results/<area>. A recipe whose paths disagreed with the
committed runs' folders (advkit.layout) would ask for runs that are already there; one that skipped a
run would leave the table a cell short. The builders' output goes to the temporary ROOT."""

import os
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dry_run(area: str, tmp_path: Path, **env: str) -> list[list[str]]:
    root = tmp_path / area
    root.mkdir()
    for entry in (REPO / "results" / area).iterdir():
        if entry.is_dir():
            (root / entry.name).symlink_to(entry)
    log, stub = tmp_path / "advkit.log", tmp_path / "advkit"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$ADVKIT_LOG"\n')
    stub.chmod(0o755)
    python = REPO / ".venv" / "bin" / "python"
    done = subprocess.run(["bash", f"recipes/{area}/table.sh"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ADVKIT": str(stub), "ADVKIT_LOG": str(log), "ROOT": str(root),
                               "PYTHON": str(python) if python.exists() else "python3", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "table.md").is_file()  # the builder ran on the links
    return [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_knn_recipe_asks_for_nothing_the_table_holds(tmp_path):
    assert dry_run("knn", tmp_path) == []


def test_zh_recipe_asks_for_nothing_the_table_holds(tmp_path):
    sections = "albert-tiny-zh:chnsenticorp albert-tiny-zh:thucnews"  # the sections run so far
    assert dry_run("zh", tmp_path, SECTIONS=sections) == [["list", "models"]]  # whether the piece LM is built


def test_zh_recipe_judges_a_strong_victim_by_another_family(tmp_path):
    commands = dry_run("zh", tmp_path, SECTIONS="m3e-small:tnews", GENERATORS="pieces")
    root = tmp_path / "zh"
    assert commands[1] == ["finetune", "--recipe", "recipes/zh/judge.toml", "--model", "roformer-zh", "--dataset",
                           "tnews", "--out", f"{root}/judges/tnews-roformer-zh", "--overwrite", "--quiet"]
    assert commands[2][:4] == ["finetune", "--recipe", "recipes/zh/victim-m3e-small.toml", "--model"]
    attack = commands[3]
    assert attack[attack.index("--judge") + 1] == f"{root}/judges/tnews-roformer-zh"
    assert attack[attack.index("--out") + 1] == f"{root}/attacks/m3e-small/tnews/pieces"


def test_lwp_recipe_asks_only_for_runs_the_table_lacks(tmp_path):
    commands = dry_run("lwp", tmp_path)
    outs = [Path(c[c.index("--out") + 1]) for c in commands]
    assert outs, "the LWP table lacks runs its recipe asks for (re-init victims of clean and RIPPLe, scans)"
    for out in outs:
        committed = REPO / "results" / "lwp" / out.relative_to(tmp_path / "lwp")
        assert not (committed / "metrics.json").is_file(), f"asked again for a finished run: {committed}"
    assert all(c[0] in ("finetune", "evaluate") for c in commands)
