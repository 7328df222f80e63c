"""Where each table's runs live under its ROOT (results/knn, results/lwp, results/zh): the one statement of
the run-folder layout, read by the recipe that writes the runs (recipes/<area>/table.sh, through
`python -m advkit.layout TABLE KIND ROOT FIELD=VALUE ...`) and by the builder that reads them
(advkit.<area>.table, through `run` and `runs`).

    python -m advkit.layout lwp lfr results/lwp source=lwp setting=olid target=0
    results/lwp/lwp/victims/olid-lfr-t0
"""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path

LAYOUT = {
    "knn": {
        # setting: rich (rich-source) or shots16; run: a method (ce, scl, moco, knn, at), knn-pretrained (the
        # control), or an attacked run, "<run>-<attack>" (run: ce, knn, knn-cls, knn-vote, knn-vote-adaptive,
        # knn-adaptive, knn-transfer, at)
        "run": "{dataset}/{setting}/{run}",
        "setting": "{dataset}/{setting}",
        "seed": "{dataset}/seeds/{seed}",  # robustness over seeds: the same run names inside
    },
    "lwp": {
        "poisoned": "{source}",  # a mode (badnet, ripple, lwp, lwp-single) or lwp-clean, its control
        "seed": "seeds/{source}-s{seed}",  # lwp and lwp-clean poisoned again at another seed
        "retrained": "retrained/{source}",  # a poisoned model trained again with the same flags and seed
        "victim": "{source}/victims/{setting}",  # source: clean or a mode; setting: a recipes/lwp/victim-*.toml
        "lfr": "{source}/victims/{setting}-lfr{target}",
        "scan": "{source}/victims/{setting}-scan{target}",
        "defence": "{source}/victims/{setting}-{defence}",  # an inference-time detector (advkit.poison.defences)
    },
    "zh": {
        "judge": "judges/{dataset}{judge}",  # judge: the judge's model (recipes/zh/judges.toml)
        "victim": "victims/{model}/{dataset}",
        "attacked": "attacks/{model}/{dataset}",  # one section of the table: a victim's attacks on a data set
        "attack": "attacks/{model}/{dataset}/{generator}{check}",
    },
}
# Fields written as a suffix: the poisoning's target label 1 as nothing ("-t0" for target 0: a victim on
# another task may send the backdoor to either label); the default label check (lexicon) as nothing,
# "-nocheck" without one; the first label judge, m3e-small, as nothing (the judge of the albert-tiny-zh
# victims), another judge by its model ("-roformer-zh").
SUFFIX = {"target": lambda t: "" if str(t) in ("", "1") else f"-t{t}",
          "check": lambda c: "" if c in ("", "lexicon") else "-nocheck" if c == "none" else f"-{c}",
          "judge": lambda j: "" if j in ("", "m3e-small") else f"-{j}"}


def run(root: str | Path, table: str, kind: str, **fields) -> Path:
    """The folder of one run (or of a group of runs) of `table`, given every field of its template."""
    values = {k: SUFFIX[k](v) if k in SUFFIX else v for k, v in fields.items()}
    return Path(root) / LAYOUT[table][kind].format(**values)


def runs(root: str | Path, table: str, kind: str, **fields) -> list[Path]:
    """The folders of `kind` that exist, sorted; a field not given matches any name (a suffix field given as
    its default, nothing, matches any suffix too: the names before it are free)."""
    template = LAYOUT[table][kind]
    names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    pattern = template.format(**{k: "*" for k in names} | {k: SUFFIX[k](v) if k in SUFFIX else v
                                                          for k, v in fields.items()})
    while "**" in pattern:  # a name followed by a suffix field, both unknown: one wildcard
        pattern = pattern.replace("**", "*")
    return sorted(p for p in Path(root).glob(pattern) if p.is_dir())


def fields(root: str | Path, table: str, kind: str, folder: Path) -> dict[str, str]:
    """The field values of a folder that `runs` found: the inverse of `run` for a template whose fields are
    each a whole path part."""
    parts = [re.escape(text) + (f"(?P<{name}>[^/]+)" if name else "")
             for text, name, _, _ in string.Formatter().parse(LAYOUT[table][kind])]
    return re.fullmatch("".join(parts), Path(folder).relative_to(root).as_posix()).groupdict()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in LAYOUT or argv[1] not in LAYOUT[argv[0]]:
        print("usage: python -m advkit.layout TABLE KIND ROOT FIELD=VALUE ...: TABLE and KIND one of "
              + "; ".join(f"{t}: {', '.join(k)}" for t, k in LAYOUT.items()), file=sys.stderr)
        return 2
    try:
        print(run(argv[2], argv[0], argv[1], **dict(a.split("=", 1) for a in argv[3:])))
    except (KeyError, ValueError) as e:
        print(f"advkit.layout: {argv[0]} {argv[1]} needs every field of {LAYOUT[argv[0]][argv[1]]!r} ({e})",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
