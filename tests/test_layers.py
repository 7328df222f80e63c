"""The package's layers, one way: every import (inside functions too) goes to its own layer or below,
inside a layer to a module listed before it, no method package imports another, and no import closes a
cycle; bench/ (above the package) imports only what exists.

    core (errors, seeds, progress, optim, distributed, results, hf, stats, precision, gate, layout)
    < data, models, metrics, victim, knn_bert (KNN-BERT's parts, training and inference), predictor, report,
      fluency, assets
    < config (the machinery of settings: no command's dataclass, no method's names)
    < methods (finetune, poison, attack_zh, attacks: each with its package's names and its own config)
    < evaluate, card, pipeline, attack_texts
    < cli, api, and the package advkit itself (its names are the API's functions, imported when first used)
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "advkit"
BENCH = PACKAGE.parent / "bench"
METHODS = ("advkit.finetune", "advkit.poison", "advkit.attack_zh", "advkit.attacks")
# Each layer in reading order: a module imports only modules of lower layers and those before it in its own.
LAYERS = [
    ["advkit.errors", "advkit.seeds", "advkit.progress", "advkit.optim", "advkit.precision", "advkit.stats",
     "advkit.hf", "advkit.gate", "advkit.results", "advkit.distributed", "advkit.layout"],
    ["advkit.data", "advkit.models", "advkit.metrics", "advkit.report", "advkit.assets", "advkit.fluency",
     "advkit.victim", *(f"advkit.knn_bert{m}" for m in ("", ".datastore", ".losses", ".selection", ".predictor",
                                                         ".encoder")), "advkit.predictor"],
    ["advkit.config"],
    [*(f"advkit.finetune{m}" for m in ("", ".config", ".adversarial", ".objective", ".train", ".table")),
     *(f"advkit.poison{m}" for m in ("", ".config", ".triggers", ".layers", ".metrics", ".onion", ".defences", ".checks",
                                      ".train", ".table")),
     *(f"advkit.attack_zh{m}" for m in ("", ".config", ".label_check", ".search", ".piece_lm", ".substitutes",
                                         ".run", ".table")),
     *(f"advkit.attacks{m}" for m in ("", ".quality", ".recipes"))],
    ["advkit.evaluate", "advkit.card", "advkit.pipeline", "advkit.attack_texts"],
    ["advkit.api", "advkit.cli", "advkit"],
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if module in names:
            return i
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")


def method_of(module: str) -> str | None:
    return next((m for m in METHODS if module == m or module.startswith(m + ".")), None)


def imports(module: str, path: Path, known: dict) -> set[str]:
    """advkit modules that `module` imports anywhere in its file (a `from pkg import name` counts name
    when it is a module, else pkg)."""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "advkit")
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = ".".join(base[: len(base) - node.level + 1] + ([source] if source else []))
            if source.split(".")[0] != "advkit":
                continue
            for a in node.names:
                found.add(f"{source}.{a.name}" if f"{source}.{a.name}" in known else source)
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(m, p, known) for m, p in known.items()}


def test_every_import_goes_down_or_sideways():
    wrong = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
             for m, targets in graph().items() for t in sorted(targets) if layer(t) > layer(m)]
    assert not wrong, "\n".join(wrong)


def test_inside_a_layer_every_import_goes_to_a_module_listed_before():
    """Each layer reads top to bottom: its modules are listed in LAYERS in an order in which none
    imports a later one, so a reader (or a new module) has one place to stand."""
    wrong = [f"{m} imports {t}, listed after it in its layer" for m, targets in graph().items()
             for t in sorted(targets) if layer(t) == layer(m)
             and LAYERS[layer(m)].index(t) > LAYERS[layer(m)].index(m)]
    assert not wrong, "\n".join(wrong)


def test_every_module_is_in_one_layer_once():
    listed = [m for names in LAYERS for m in names]
    assert len(listed) == len(set(listed)) and set(listed) == set(modules())


def test_bench_imports_only_modules_that_exist():
    """bench/ sits above the package: its scripts may import any layer, but only what exists there (a
    module renamed or a name moved breaks a benchmark only at its next run, hours later)."""
    import importlib

    known = modules()
    wrong = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "advkit":
                for a in node.names:
                    if f"{node.module}.{a.name}" in known:
                        continue
                    if node.module not in known or not hasattr(importlib.import_module(node.module), a.name):
                        wrong.append(f"{path.name}: from {node.module} import {a.name}")
            elif isinstance(node, ast.Import):
                wrong += [f"{path.name}: import {a.name}" for a in node.names
                          if a.name.split(".")[0] == "advkit" and a.name not in known]
    assert not wrong, "\n".join(wrong)


def test_no_method_imports_another():
    wrong = [f"{m} imports {t}" for m, targets in graph().items() for t in sorted(targets)
             if method_of(m) and method_of(t) and method_of(m) != method_of(t)]
    assert not wrong, "\n".join(wrong)


def test_package_names_import_nothing_of_advkit_but_errors():
    """A method package's __init__ holds light names (its choices) for its config and the CLI: importing
    them must not pull in the method's modules."""
    g = graph()
    for package in METHODS:
        assert g[package] <= {"advkit.errors"}, (package, g[package])


def test_no_cycles():
    g = graph()
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in sorted(g[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [m, t]))
            if t not in state:
                visit(t, stack + [m])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [])


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The walker sees an import inside a function: config importing evaluate would fail the test."""
    known = modules()
    source = tmp_path / "config.py"
    source.write_text("def f():\n    from advkit.evaluate import run\n    from advkit.attack_zh import run as r\n")
    found = imports("advkit.config", source, known)
    assert found == {"advkit.evaluate", "advkit.attack_zh.run"}
    assert max(layer(t) for t in found) > layer("advkit.config")


def test_config_imports_no_method_package():
    import subprocess
    import sys

    code = "import sys, advkit.config; print(' '.join(sorted(m for m in sys.modules if m.startswith('advkit'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["advkit", "advkit.config", "advkit.errors"]
