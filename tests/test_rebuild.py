"""Every committed table rebuilds from the stored runs, byte for byte, by the code that wrote it.

- results/<name>/table.md (and any other file the builder writes at the top of results/<name>/, such
  as results/lwp/label_flip_rate_per_layer.png): the builder that recipes/<name>/table.sh calls last
  (`"$PYTHON" -m advkit.<...>.table "$ROOT"`), run on a copy of the run directories git holds.
- bench/results.md: bench/report.py (what `make bench` runs last), on a copy of bench/ and the
  benchmark JSON files git holds in bench/out/.

A table edited by hand, a run directory changed after its table was written, or a builder that no
longer writes what it wrote fails here with the first differing line. Nothing under results/ or
bench/ is written: everything happens in a temporary copy.
"""

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

TABLES = sorted(p.parent.name for p in (REPO / "results").glob("*/table.md"))
# The tables `make tables` writes (its table-NAME targets), each committed as results/NAME/table.md:
# the list the rebuild runs over, so that a table missing from the checkout is named, not dropped.
MADE = sorted(re.findall(r"^table-([\w-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), re.M))


def tracked(folder: Path) -> list[Path]:
    """The files git holds under `folder` (what a fresh clone has); every file there without git."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", str(folder.relative_to(REPO))],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        files = [REPO / f for f in out.split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        files = []
    return files or [p for p in folder.rglob("*") if p.is_file()]


def copy_tracked(folder: Path, dest: Path, keep=lambda rel: True) -> None:
    for path in tracked(folder):
        rel = path.relative_to(folder)
        if path.is_file() and keep(rel):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)


def first_difference(built: bytes, committed: bytes, name: str) -> str:
    try:
        a, b = committed.decode("utf-8").splitlines(), built.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return f"{name}: {len(committed)} bytes committed, {len(built)} rebuilt, contents differ"
    diff = list(difflib.unified_diff(a, b, f"{name} (committed)", f"{name} (rebuilt)", lineterm="", n=0))
    return "\n".join(diff[:12]) or f"{name}: line endings or final newline differ"


NOTES = "NOTES.md"


def builder_of(name: str) -> str:
    """The module recipes/<name>/table.sh runs to write the table."""
    recipe = REPO / "recipes" / name / "table.sh"
    assert recipe.is_file(), f"results/{name}/table.md has no recipe (recipes/{name}/table.sh) that writes it"
    modules = re.findall(r'-m\s+(advkit[\w.]*)\s+"\$ROOT"', recipe.read_text(encoding="utf-8"))
    assert len(modules) == 1, f"{recipe}: expected one `-m advkit.<...> \"$ROOT\"` table builder, found {modules}"
    return modules[0]


def test_every_table_has_a_recipe():
    # a new table gets a make target (and so a place in the rebuild) and a recipe
    assert MADE and set(TABLES) <= set(MADE), (TABLES, MADE)
    for name in MADE:
        builder_of(name)


@pytest.mark.parametrize("name", MADE)
def test_results_table_rebuilds_byte_for_byte(name, tmp_path):
    source = REPO / "results" / name
    if name not in TABLES:  # a skip that names it; a failure under CI=true (conftest)
        pytest.skip(f"results/{name}/table.md is not in this checkout (make table-{name} writes it)")
    root = tmp_path / name
    # The run directories only: the files at the top of results/<name>/ are what the builder writes.
    copy_tracked(source, root, keep=lambda rel: len(rel.parts) > 1)
    assert (root / "table.md").exists() is False and any(root.rglob("metrics.json")), f"no runs under {source}"
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, "-m", builder_of(name), str(root)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p for p in root.rglob("*") if p.is_file() and before.get(p) != p.read_bytes())
    # NOTES.md: the area's lab notes, written by people (issue 29), the one top file no builder writes
    committed_top = sorted(p.name for p in tracked(source) if p.parent == source and p.name != NOTES)
    assert sorted(p.relative_to(root).as_posix() for p in written) == committed_top, \
        "the builder writes other files than the ones committed at the top of results/" + name
    for path in written:
        rel = path.relative_to(root)
        built, committed = path.read_bytes(), (source / rel).read_bytes()
        assert built == committed, (f"results/{name}/{rel} does not rebuild from its runs:\n"
                                    + first_difference(built, committed, f"results/{name}/{rel}"))


def test_bench_results_rebuild_byte_for_byte(tmp_path):
    bench = REPO / "bench"
    copy = tmp_path / "bench"
    copy_tracked(bench, copy, keep=lambda rel: rel.suffix == ".py" or rel.parts[0] == "out")
    assert not (copy / "results.md").exists() and list((copy / "out").glob("*.json"))
    proc = subprocess.run([sys.executable, str(copy / "report.py")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built, committed = (copy / "results.md").read_bytes(), (bench / "results.md").read_bytes()
    assert built == committed, "bench/results.md does not rebuild from bench/out:\n" + first_difference(
        built, committed, "bench/results.md")


# Written before each benchmark recorded its own script (bench/common.record, gpu_check.py and
# gpu_run.sh do now); each loses its place here when its benchmark is next run.
BEFORE_SCRIPT_FIELD = {"gpu_check.json", "knn_epoch.json", "knn_inference.json", "knn_memory.json",
                       "pwws_vs_textattack.json", "zh_vs_textattack.json"}


def test_every_benchmark_file_names_the_script_that_wrote_it():
    files = sorted((REPO / "bench" / "out").glob("*"))
    assert files, "no benchmark files in bench/out: nothing to check"  # bench/results.md is built from them
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if path.name in BEFORE_SCRIPT_FIELD and "script" not in doc:
            continue
        assert "script" in doc, f"{path.name}: no \"script\" field naming the benchmark that wrote it"
        assert (REPO / doc["script"]).is_file(), f"{path.name}: script {doc['script']} does not exist"
        assert doc["script"] != "bench/report.py"


def test_a_benchmark_record_names_its_script_commit_and_machine(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import common

    monkeypatch.setattr(common, "OUT", tmp_path)
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(REPO / "bench" / "knn_memory.py"), raising=False)
    doc = common.record("example", {"benchmark": "b", "ratio": 1.0})
    assert json.loads((tmp_path / "example.json").read_text(encoding="utf-8")) == doc
    assert doc["script"] == "bench/knn_memory.py"  # the running benchmark, as the repo names it
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", doc["git_commit"])  # the tests run inside the git checkout
    assert {"cpu", "cores", "load_average", "host"} <= set(doc["machine"]) and doc["ratio"] == 1.0
