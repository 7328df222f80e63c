"""A robustness gate for CI: `evaluate --require "METRIC>=VALUE"` (repeatable), judged on the metrics
the run has just computed, which are written (with the verdict) whatever it is.

Names are those of the run's metrics.json; a card's parts are addressed with a dot
(`pwws.accuracy_under_attack`, `clean.macro_f1`) beside its own headline names (`clean_accuracy`).
Exit codes follow DESIGN.md: 0 every requirement holds, 1 one or more is missed (a `gate:` line
each), 2 a usage error: a malformed requirement, or a metric the run does not write. Names that
can be known before the run (a card's parts, an English attack's metrics) are checked before it,
the rest as soon as it has run.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from advkit.errors import UserError, closest

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
NOT = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}  # what a missed requirement's value shows
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
PATTERN = re.compile(rf"^\s*([A-Za-z_][\w.-]*)\s*(>=|<=|==|>|<)\s*({NUMBER})\s*$")
DEFER = None  # in a skeleton of names: a part whose names are known only once it has run


@dataclass(frozen=True)
class Requirement:
    metric: str
    op: str
    threshold: str  # as the user typed it, so the gate's lines quote it back unchanged

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold}"


def parse(text: str) -> Requirement:
    match = PATTERN.match(str(text))
    if not match:
        raise UserError(f"--require '{text}': expected METRIC OP NUMBER with OP one of >=, >, <=, <, == "
                        f"(e.g. --require \"clean_accuracy>=0.85\")")
    return Requirement(*match.groups())


def _walk(tree, name: str):
    """(found, value) for a dotted name in nested dicts; found is DEFER where the walk meets a deferred part."""
    value = tree
    for part in name.split("."):
        if value is DEFER:
            return DEFER, None
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _names(tree, prefix: str = "") -> list[str]:
    out = []
    for key, value in (tree or {}).items():
        out += _names(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return out


def _unknown(req: Requirement, tree) -> str:
    return f"--require '{req}': this run writes no metric '{req.metric}'{closest(req.metric, _names(tree))}"


def check_known(requirements: list[str], skeleton: dict) -> None:
    """Before the run: refuse a requirement whose metric the run will not write, where `skeleton`
    (the names the run writes, nested for a card's parts; DEFER for parts known only after) says so."""
    for req in map(parse, requirements):
        found, _ = _walk(skeleton, req.metric)
        if found is False:
            raise UserError(_unknown(req, skeleton))


def _show(value: float) -> str:
    return f"{value:.6g}"


def judge(requirements: list[str], metrics: dict) -> dict:
    """The verdict on metrics just computed (for a card: its headline metrics with each part's under its name).

    A metric that is not measured (None: e.g. a success rate with no example to attack) misses
    its requirement: a gate passes on evidence only. Returns {"requirements", "passed", "failed",
    "unknown" (usage errors, found only after the run), "outcome": passed | failed | error}."""
    verdict = {"requirements": list(requirements), "passed": [], "failed": [], "unknown": []}
    for req in map(parse, requirements):
        found, value = _walk(metrics, req.metric)
        if not found:
            verdict["unknown"].append(_unknown(req, metrics))
        elif isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
            verdict["unknown"].append(f"--require '{req}': metric '{req.metric}' is not a number ({value!r:.40})")
        elif value is None:
            verdict["failed"].append(f"{req.metric} n/a (not measured), required {req.op} {req.threshold}")
        elif OPS[req.op](value, float(req.threshold)):
            verdict["passed"].append(f"{req.metric} {_show(value)} {req.op} {req.threshold}")
        else:
            verdict["failed"].append(f"{req.metric} {_show(value)} {NOT[req.op]} {req.threshold}")
    verdict["outcome"] = "error" if verdict["unknown"] else "failed" if verdict["failed"] else "passed"
    return verdict


def exit_status(verdict: dict | None) -> tuple[int, list[str]]:
    """(exit code, lines for the CLI to print): 0 and a summary, or 1 and a `gate:` line per miss;
    a requirement on a metric the run did not write raises the usage error (exit 2)."""
    if not verdict:
        return 0, []
    if verdict["unknown"]:
        raise UserError(verdict["unknown"][0])
    if verdict["failed"]:
        return 1, [f"gate: {line}" for line in verdict["failed"]]
    return 0, [f"gate: passed ({len(verdict['passed'])} requirement{'s' * (len(verdict['passed']) != 1)})"]
