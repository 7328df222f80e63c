"""The run-folder layout (advkit.layout): what the table recipes write is where the table builders read."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from advkit import layout
from advkit.poison import table as lwp_table

REPO = Path(__file__).resolve().parents[1]


def run_dir(*args: str) -> str:
    """The recipes' run_dir (recipes/lib.sh), as a recipe calls it."""
    out = subprocess.run(["bash", "-c", 'source recipes/lib.sh && run_dir "$@"', "run_dir", *args], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_recipe_and_builder_agree_on_every_kind(tmp_path):
    values = {"dataset": "olid", "setting": "rich", "run": "knn-pwws", "seed": "3", "source": "lwp",
              "model": "albert-tiny-zh", "generator": "pieces", "target": "0", "check": "none",
              "defence": "strip", "judge": "roformer-zh"}
    for table, kinds in layout.LAYOUT.items():
        for kind, template in kinds.items():
            fields = {k: v for k, v in values.items() if "{" + k + "}" in template}
            assert run_dir(table, kind, str(tmp_path), *(f"{k}={v}" for k, v in fields.items())) == \
                str(layout.run(tmp_path, table, kind, **fields))


def test_suffixes_and_their_defaults():
    assert layout.run("R", "lwp", "lfr", source="lwp", setting="olid", target=1) == Path("R/lwp/victims/olid-lfr")
    assert layout.run("R", "lwp", "scan", source="lwp", setting="olid", target=0) == Path("R/lwp/victims/olid-scan-t0")
    assert layout.run("R", "zh", "attack", model="m", dataset="d", generator="chars", check="lexicon") == \
        Path("R/attacks/m/d/chars")
    assert layout.run("R", "zh", "attack", model="m", dataset="d", generator="chars", check="none") == \
        Path("R/attacks/m/d/chars-nocheck")
    assert layout.run("R", "zh", "attack", model="m", dataset="d", generator="chars", check="negation") == \
        Path("R/attacks/m/d/chars-negation")
    assert layout.run("R", "zh", "judge", dataset="d", judge="m3e-small") == Path("R/judges/d")  # the first judge
    assert layout.run("R", "zh", "judge", dataset="d", judge="roformer-zh") == Path("R/judges/d-roformer-zh")


def test_runs_finds_what_run_names_and_fields_inverts_it(tmp_path):
    made = [layout.run(tmp_path, "lwp", "seed", source=s, seed=n) for s in ("lwp", "lwp-clean") for n in (2, 3)]
    for p in made:
        p.mkdir(parents=True)
    assert layout.runs(tmp_path, "lwp", "seed", source="lwp") == made[:2]  # not lwp-clean's
    zh = layout.run(tmp_path, "zh", "attack", model="albert-tiny-zh", dataset="tnews", generator="pieces", check="none")
    zh.mkdir(parents=True)
    assert layout.runs(tmp_path, "zh", "attack", check="none") == [zh]
    assert layout.runs(tmp_path, "zh", "attack", check="negation") == []
    (section,) = layout.runs(tmp_path, "zh", "attacked")
    assert layout.fields(tmp_path, "zh", "attacked", section) == {"model": "albert-tiny-zh", "dataset": "tnews"}


def test_builder_reads_the_layouts_folders(tmp_path):
    """A victim's LFR run at the target OLID's recipe declares (0), where the recipe puts it, is what the
    LWP builder picks up; a run toward the other label is not."""
    import json

    assert lwp_table.declared_target("olid") == 0 and lwp_table.declared_target("standard") == 1
    for target in (0, 1):
        lfr = layout.run(tmp_path, "lwp", "lfr", source="lwp", setting="olid", target=target)
        lfr.mkdir(parents=True)
        (lfr / "metrics.json").write_text(json.dumps({"metrics": {"label_flip_rate": 0.5 + target / 4}}),
                                          encoding="utf-8")
    found = lwp_table._lfr_run(tmp_path, "lwp", "olid")
    assert found[0] == layout.run(tmp_path, "lwp", "lfr", source="lwp", setting="olid", target=0)
    assert found[1]["metrics"]["label_flip_rate"] == 0.5


def test_missing_field_or_kind_is_a_one_line_error():
    for args in (["lwp", "lfr", "R", "source=lwp"], ["lwp", "nope", "R"], ["knn"]):
        done = subprocess.run([sys.executable, "-m", "advkit.layout", *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 2 and done.stdout == "" and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*/table.sh")))
def test_recipes_write_no_path_of_their_own(recipe):
    """Every run folder in a table recipe comes from run_dir: no "$ROOT/..." spelled out by hand."""
    assert not re.findall(r'\$\{?ROOT\}?/', recipe.read_text(encoding="utf-8"))
