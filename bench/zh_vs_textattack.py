"""advkit's piece attack against a TextAttack-built Chinese attack: same victim, same examples.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/zh_vs_textattack.py [--victim DIR] [--lm piece-lm-zh] [--limit 100]

Victim: albert-tiny-zh fine-tuned on chnsenticorp (recipes/zh's victim). git holds its metrics.json but
not its weights: where they are missing (a fresh clone), the victim is trained first with the settings
that metrics.json records, into the git-ignored runs/bench/ (and reused from there).
Examples: the fixed sample of `--limit` chnsenticorp dev examples (seed 0) both tools attack.
- advkit: `advkit attack-zh --substitutes pieces --label-check none`, its own `seconds_per_example`
  (the search: victim queries and the piece LM; not the fluency and similarity scoring done
  afterwards). TextAttack's attack has no label check, so the ratio compares advkit without it;
  advkit's default (`--label-check lexicon`) is run and reported beside it.
- TextAttack: `Attack(UntargetedClassification, [RepeatModification, StopwordModification
  (advkit's Chinese stop-words)], CompositeTransformation([ChineseMorphonymCharacterSwap,
  WordSwapMaskedLM on albert-tiny-zh (top 48)]), GreedyWordSwapWIR)`, jieba words, querying the
  same victim object as advkit (advkit.attacks.recipes.model_wrapper, batches padded to their longest,
  64 tokens, attack-zh's default --precision auto as this CPU resolves it); seconds per example of `attack.attack` alone.
Both get the same query budget (2000). Writes bench/out/zh_vs_textattack.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import record
from advkit.victim import Victim

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VICTIM = REPO / "results/zh/victims/albert-tiny-zh/chnsenticorp"  # metrics.json in git, weights git-ignored
BUILT = REPO / "runs/bench"  # git-ignored: victims this benchmark trains itself
QUERIES = 2000
MAX_LENGTH = 64  # the victims' training length


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")


def textattack_side(victim: Path, examples) -> dict:
    from advkit.assets import use_project_nltk

    use_project_nltk()  # TextAttack reads NLTK's stop words at import: the project's copy, no download
    import textattack
    import transformers
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (ChineseMorphonymCharacterSwap, CompositeTransformation,
                                            WordSwapMaskedLM)

    from advkit import models
    from advkit.attack_zh.search import STOP_WORDS
    from advkit.precision import resolve

    from advkit.attacks.recipes import model_wrapper

    # The same victim object advkit queries (batches padded to their longest, at most MAX_LENGTH
    # tokens, under advkit's default query precision): TextAttack's HuggingFaceModelWrapper would pad
    # every query to 512 and slow it down for reasons that have nothing to do with the attack.
    same = Victim.load(str(victim), max_length=MAX_LENGTH, batch_size=32)
    # attack-zh's default --precision (auto, as resolved here): the ratio compares searches, not query paths
    same.precision = resolve("auto", "cpu")
    wrapper = model_wrapper(same)
    lm_folder = models.resolve("albert-tiny-zh")
    lm = transformers.AutoModelForMaskedLM.from_pretrained(lm_folder)
    lm_tokenizer = transformers.AutoTokenizer.from_pretrained(lm_folder)
    lm.config.model_type = "bert"  # TextAttack's subword check knows no albert; this one uses BERT's wordpieces
    transformation = CompositeTransformation([
        ChineseMorphonymCharacterSwap(),
        WordSwapMaskedLM(method="bae", masked_language_model=lm, tokenizer=lm_tokenizer, max_candidates=48)])
    attack = textattack.Attack(UntargetedClassification(wrapper, query_budget=QUERIES),
                               [RepeatModification(), StopwordModification(stopwords=set(STOP_WORDS))],
                               transformation, GreedyWordSwapWIR(wir_method="unk"))
    counts, seconds = {"successes": 0, "failed": 0, "skipped": 0}, []
    for e in examples:
        start = time.perf_counter()
        result = attack.attack(e.text, e.label)
        seconds.append(time.perf_counter() - start)
        if isinstance(result, SuccessfulAttackResult):
            counts["successes"] += 1
        elif isinstance(result, SkippedAttackResult):
            counts["skipped"] += 1
        elif isinstance(result, FailedAttackResult):
            counts["failed"] += 1
    attacked = counts["successes"] + counts["failed"]
    return {**counts, "attack_success_rate": counts["successes"] / attacked if attacked else None,
            "seconds_per_example": sum(seconds) / len(seconds)}


def has_weights(run: Path) -> bool:
    """A fine-tuning run directory with its model folder, or a model folder itself."""
    return any((folder / "config.json").is_file() for folder in (run / "model", run))


def recorded_settings(run: Path) -> dict:
    """The finetune settings a run's metrics.json records (its config), as recipe keys."""
    doc = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    if doc.get("command") != "finetune":
        sys.exit(f"{run}/metrics.json: not a finetune run ({doc.get('command')}); cannot train this victim")
    # None is a dataclass default ("unset"), which a recipe leaves out; where the data came from is this machine's.
    return {k: v for k, v in doc["config"].items() if v is not None and k != "data_root"}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def train_victim(settings: dict, out: Path) -> dict:
    """`advkit finetune --recipe` with exactly these settings, into `out`; returns its metrics."""
    out.parent.mkdir(parents=True, exist_ok=True)
    recipe = out.parent / f"{out.name}.recipe.toml"
    recipe.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items()), encoding="utf-8")
    print(f"zh_vs_textattack: no victim weights; training one into {out} with {recipe.name}", file=sys.stderr)
    run([str(BIN / "advkit"), "finetune", "--recipe", str(recipe), "--out", str(out), "--overwrite", "--quiet"])
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))["metrics"]


def victim_with_weights(requested: Path) -> tuple[Path, dict | None]:
    """(victim run directory, what was trained here or None). A run whose weights git does not hold is
    trained again, from its own metrics.json, into the same place under runs/bench/; a folder with neither
    weights nor metrics.json gets the zh table's victim (VICTIM's recorded settings)."""
    if has_weights(requested):
        return requested, None
    source = requested if (requested / "metrics.json").is_file() else VICTIM
    target = requested
    if source is requested:  # never over the recorded run (results/ is in git): a git-ignored copy of it
        where = requested.resolve()
        target = BUILT / (where.relative_to(REPO / "results") if where.is_relative_to(REPO / "results") else where.name)
    recorded = json.loads((source / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    settings = recorded_settings(source)
    done = target / "metrics.json"
    built = json.loads(done.read_text(encoding="utf-8")) if done.is_file() else {}
    if has_weights(target) and all(built.get("config", {}).get(k) == v for k, v in settings.items()):
        trained = built["metrics"]  # trained here before, with these settings
    else:
        trained = train_victim(settings, target)
    note = {"trained_from": str(source), "into": str(target),
            "eval_accuracy": trained.get("eval_accuracy"), "recorded_eval_accuracy": recorded.get("eval_accuracy")}
    if note["eval_accuracy"] != note["recorded_eval_accuracy"]:
        print(f"zh_vs_textattack: the victim trained here reached {note['eval_accuracy']}, the recorded run "
              f"{note['recorded_eval_accuracy']}", file=sys.stderr)
    return target, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--victim", type=Path, default=VICTIM)
    ap.add_argument("--lm", default="piece-lm-zh")
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()
    args.victim, trained_here = victim_with_weights(args.victim)
    from advkit import data

    examples = data.sample(data.load("chnsenticorp", "dev").examples, args.limit)
    ours = {}
    with tempfile.TemporaryDirectory() as tmp:
        for check in ("none", "lexicon"):
            run([str(BIN / "advkit"), "attack-zh", "--model", str(args.victim), "--dataset", "chnsenticorp", "--split",
                 "dev", "--limit", str(args.limit), "--lm", args.lm, "--max-queries", str(QUERIES), "--max-length",
                 str(MAX_LENGTH), "--label-check", check, "--out", f"{tmp}/{check}", "--quiet"])
            ours[check] = json.loads(Path(f"{tmp}/{check}/metrics.json").read_text())["metrics"]
    checked, ours = ours["lexicon"], ours["none"]
    theirs = textattack_side(args.victim, examples)
    mine = {"successes": ours["successes"], "failed": ours["failures"], "skipped": ours["skipped"]}
    ratio = theirs["seconds_per_example"] / ours["seconds_per_example"]
    record("zh_vs_textattack", {
        "benchmark": f"Chinese attack on {args.limit} chnsenticorp dev examples (fixed sample, seed 0), albert-tiny-zh "
                     "victim: advkit attack-zh (pieces, --label-check none) vs TextAttack GreedyWordSwapWIR + morphonym / "
                     "masked-LM swaps",
        "examples": args.limit, "victim": str(args.victim), "lm": args.lm,
        "advkit": f"{ours['seconds_per_example']:.2f} s/example, success {ours['attack_success_rate']:.3f}",
        "baseline": f"{theirs['seconds_per_example']:.2f} s/example, success {theirs['attack_success_rate']:.3f}",
        "ratio": round(ours["seconds_per_example"] / theirs["seconds_per_example"], 3),
        "goal": "at least 5x faster (ratio at most 0.2) at an equal or higher success rate",
        "outcome": f"advkit {ratio:.1f}x faster; counts advkit {mine}, TextAttack "
                   f"{ {k: theirs[k] for k in ('successes', 'failed', 'skipped')} }; advkit's default "
                   f"(--label-check lexicon, which TextAttack lacks): {checked['seconds_per_example']:.2f} s/example, "
                   f"success {checked['attack_success_rate']:.3f}",
        "advkit_metrics": ours, "advkit_label_check_metrics": checked, "textattack": theirs,
        **({"victim_trained_here": trained_here} if trained_here else {})})


if __name__ == "__main__":
    main()
