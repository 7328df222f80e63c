"""`advkit attack`: attack the texts a user types (or lists in a file) against one model, and show each change.

The attacks are those of `evaluate --attack`, on the same predictor (advkit.predictor: a knn run's
combined KNN + linear predictor, else the classifier): TextAttack's English recipes
(attacks.recipes) and attack-zh's greedy search with its substitute generators (attack_zh.search,
with attack-zh's default top-K, perturbation and query budgets). The true label of a text is
--label, the label column of --file, or else the model's own prediction: then the attack is an
untargeted attack on what the model says now, and never skipped.

A changed word (or Chinese unit) is shown as `[[old->new]]` in the adversarial text. With --out the
records and metrics form a run directory as every attack's do (records.jsonl, metrics.json through
advkit.metrics.attack_metrics); --export writes the successes with their true labels as a data set
(columns sentence, label: what advkit.data reads) for `finetune --dataset`.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from advkit import data, models
from advkit.attack_zh import ZH_ATTACKS
from advkit.attacks import ATTACKS
from advkit.attack_zh.config import AttackZhConfig
from advkit.config import QUERY_PRECISION, as_dict, check_precision, choice, cosine, opt, positive, precision_option
from advkit.errors import UserError, closest
from advkit.hf import MAX_LENGTH, is_cjk
from advkit.metrics import attack_metrics
from advkit.progress import track
from advkit.results import RunDir, atomic_write

TABLE_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json")  # read as tables with a header (advkit.data.read_table)
TEXT_COLUMNS = ("sentence", "text", "premise", "content")  # the text columns advkit.data infers, in its order
# What one changed unit of each generator is called in the printout.
UNIT = {"zh-pieces": "piece", "zh-spans": "piece", "zh-words": "word", "zh-chars": "character",
        "zh-glyph": "character", "zh-homophone": "character"}
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|\s+|[^\w\s]")  # words, runs of space, single punctuation marks


EXPORT_SUFFIXES = (".tsv", ".csv", ".jsonl")  # attack --export: the formats advkit.data reads as a data set


ATTACK_LABEL_CHECKS = ("negation", "none")  # attack: no training split to learn attack-zh's lexicon from


@dataclass
class AttackConfig:
    """`advkit attack`: the texts typed or listed in a file, attacked one by one (advkit.attack_texts)."""

    COMMAND: ClassVar[str] = "attack"


    model: str | None = opt(None, "The victim: alias, model folder, or finetune run directory (a knn run: its "
                                  "combined predictor), as evaluate takes it (required).")
    attack: str | None = opt(None, "pwws, deepwordbug, textfooler, bert-attack, bae (English); zh-pieces, zh-spans, "
                                   "zh-chars, zh-words, zh-glyph, zh-homophone (Chinese, attack-zh's search) "
                                   "(required).")
    text: list[str] | None = opt(None, "A text to attack; repeat the flag for several.")
    file: str | None = opt(None, "Texts to attack: a .tsv/.csv/.jsonl file with a text column (and a label "
                                 "column), or any other file with one text per line.")
    text_column: str | None = opt(None, "Text column of --file (unset: sentence, text, premise or content).")
    label_column: str | None = opt(None, "Label column of --file (unset: label, when there is one).")
    skip_bad_rows: bool = opt(False, "Drop empty or malformed rows of --file instead of stopping at the first.",
                              "--skip-bad-rows")
    label: int | None = opt(None, "True label id of every text without one in --file (unset: the model's own "
                                  "prediction, an untargeted attack on what it says now).")
    export: str | None = opt(None, "Write the adversarial examples (successes) with their true labels to this "
                                   ".tsv/.csv/.jsonl file, a data set `finetune --dataset` reads (an existing file only with "
                                   "--overwrite).")
    attack_lm: str | None = opt(None, "Local masked LM for bert-attack / bae; the piece LM for zh-pieces and "
                                      "zh-spans.")
    attack_encoder: str = opt("minilm-l6", "Local sentence encoder in place of USE; also the one that scores each "
                                           "English adversarial example's similarity to its original.")
    min_similarity: float | None = opt(None, "English attacks: keep every candidate's --attack-encoder cosine with "
                                             "the original at or above this (-1 to 1), a constraint the search "
                                             "respects.")
    query_budget: int | None = opt(None, "Victim queries per text before giving up (unset: the recipe's; 2000 for "
                                         "the Chinese generators, as attack-zh).")
    label_check: str = opt("negation", "Chinese generators: drop swaps that add or remove a negation (negation) or "
                                       "keep every swap (none).")
    batch_size: int = opt(32, "Texts per victim query batch.")
    max_length: int = opt(MAX_LENGTH, "Victim tokens per text.")
    seed: int = opt(1, "Seed of the attack's random choices (per text: seed + its index).")
    device: str = opt("cpu", "cpu or cuda.")
    precision: str = precision_option(QUERY_PRECISION)

    def check(self) -> None:  # what is required (model, attack, texts) is asked for by the command itself
        check_precision(self)
        if self.attack is not None:
            choice("attack", self.attack, ATTACKS + ZH_ATTACKS)
        if self.text and self.file is not None:
            raise UserError("give --text or --file, not both")
        for n, text in enumerate(self.text or [], 1):
            if not text.strip():
                raise UserError(f"--text: text {n} is empty")
        if self.label is not None and self.label < 0:
            raise UserError(f"--label must be a label id (0 or more), got {self.label}")
        if self.export is not None and not self.export.endswith(EXPORT_SUFFIXES):
            raise UserError(f"--export {self.export}: name a {', '.join(EXPORT_SUFFIXES)} file (the format follows "
                            "the extension)")
        choice("label-check", self.label_check, ATTACK_LABEL_CHECKS)
        positive(self, "batch_size", "max_length", "query_budget")
        cosine(self, "min_similarity")
        if self.min_similarity is not None and self.attack in ZH_ATTACKS:
            raise UserError("--min-similarity constrains an English attack; the Chinese generators keep "
                            "attack-zh's settings")


@dataclass(frozen=True)
class Item:
    """One text to attack: where it came from (for messages), its label as given (None: not given) and
    who gave it (--label, the file's label column, or None)."""

    text: str
    label: int | str | None
    where: str
    label_from: str | None


def require(cfg: AttackConfig) -> None:
    """The settings without a default (config's defaults stay valid, as attack-zh's --model)."""
    if cfg.model is None:
        raise UserError("--model is required: the classifier to attack")
    if cfg.attack is None:
        raise UserError(f"--attack is required: one of {', '.join(ATTACKS + ZH_ATTACKS)}")
    if not cfg.text and cfg.file is None:
        raise UserError('give the texts to attack: --text "..." (repeatable) or --file FILE')


def read_inputs(cfg: AttackConfig) -> list[Item]:
    """The texts of --text, or of --file: a table with a header (.tsv/.csv/.jsonl) or one text per line."""
    given = "--label" if cfg.label is not None else None
    if cfg.text:
        return [Item(t.strip(), cfg.label, f"text {n}", given) for n, t in enumerate(cfg.text, 1)]
    path = Path(cfg.file)
    if not path.is_file():
        raise UserError(f"--file {path}: " + ("is a directory, not a file" if path.is_dir() else "no such file"))
    if path.name.removesuffix(".gz").endswith(TABLE_SUFFIXES):
        items = read_table(path, cfg)
    else:
        if cfg.text_column or cfg.label_column:
            raise UserError(f"--file {path}: --text-column and --label-column read a .tsv/.csv/.jsonl file; this "
                            "one is read as one text per line")
        raw = path.read_bytes()
        try:
            lines = raw.decode("utf-8-sig").replace("\r\n", "\n").split("\n")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise UserError(f"{path}:{line}: not UTF-8 text") from None
        items = [Item(line.strip(), cfg.label, f"{path}:{n}", given) for n, line in enumerate(lines, 1)
                 if line.strip()]
    if not items:
        raise UserError(f"--file {path}: no texts")
    return items


def read_table(path: Path, cfg: AttackConfig) -> list[Item]:
    """Rows of a table file: the text column, and the label column where there is one (its labels are
    given per row, so --label applies to none of them)."""
    rows = data.read_table(path, header=True)
    columns = list(rows[0][1]) if rows else []
    text = cfg.text_column or next((c for c in TEXT_COLUMNS if c in columns), None)
    if text is None:
        raise UserError(f"{path}: no text column among {columns}; pass --text-column")
    for flag, column in (("--text-column", text), ("--label-column", cfg.label_column)):
        if column is not None and column not in columns:
            raise UserError(f"{path}: {flag}: no column '{column}' among {columns}{closest(column, columns)}")
    label = cfg.label_column or ("label" if "label" in columns else None)
    items = []
    for line, row in rows:
        value = row.get(text)
        if not isinstance(value, str) or not value.strip():
            data.bad_row(path, line, "empty text" if isinstance(value, str) else
                         f"{'null' if value is None else 'non-string'} text in column '{text}'")
            continue
        y, given = cfg.label, "--label" if cfg.label is not None else None
        if label is not None:
            given = "file"
            y = row.get(label)
            if y is None or isinstance(y, bool) or not isinstance(y, (str, int)) or not str(y).strip():
                data.bad_row(path, line, "empty label" if isinstance(y, str) else "no label")
                continue
        items.append(Item(value.strip(), y, f"{path}:{line}", given))
    return items


def check_language(attack: str, items: list[Item]) -> None:
    """An English recipe finds nothing to swap in Chinese text, and attack-zh's search attacks only
    Chinese characters: refuse the mismatch before the model loads."""
    chinese = attack in ZH_ATTACKS
    for item in items:
        cjk = sum(map(is_cjk, item.text))
        if chinese and not cjk:
            raise UserError(f"{item.where}: --attack {attack} attacks Chinese characters; this text has none "
                            "(use an English attack: pwws, deepwordbug, textfooler, bert-attack, bae)")
        if not chinese and 2 * cjk > sum(c.isalpha() for c in item.text):
            raise UserError(f"{item.where}: --attack {attack} is an English attack; this text is Chinese (use "
                            f"{', '.join(ZH_ATTACKS)})")


def label_names(predictor) -> list[str]:
    """The model's label names from its config's id2label; ids where it has only Hugging Face's
    placeholders (LABEL_0, ...)."""
    n = predictor.num_labels
    id2label = getattr(predictor.model.config, "id2label", None) or {}
    names = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(n)]
    return [str(i) for i in range(n)] if all(re.fullmatch(r"LABEL_\d+|\d+", x) for x in names) else names


def label_id(value: int | str, names: list[str], where: str) -> int:
    """A label given as an id (--label, or a file's '1') or as one of the model's label names."""
    text = str(value).strip()
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    shown = ", ".join(f"{i} {n}" if n != str(i) else n for i, n in enumerate(names))
    raise UserError(f"{where}: label '{text}' is not one of the model's labels ({shown})")


def mark_words(original: str, adversarial: str) -> str:
    """The adversarial text with each changed run of words written [[old->new]] (a word diff)."""
    a, b = _TOKEN.findall(original), _TOKEN.findall(adversarial)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        out.append("".join(b[j1:j2]) if op == "equal" else f"[[{''.join(a[i1:i2])}->{''.join(b[j1:j2])}]]")
    return "".join(out)


def mark_units(units: list[str], changed: list[dict]) -> str:
    """attack-zh's record: its units in order, each substituted one written [[old->new]] (exact: the
    search keeps positions)."""
    new = {c["position"]: c["substitute"] for c in changed}
    return "".join(f"[[{u}->{new[i]}]]" if i in new else u for i, u in enumerate(units))


class English:
    """A TextAttack recipe on the predictor; each success scored as `evaluate --attack` scores it
    (attacks.quality: similarity, fluency before and after, share of words changed)."""

    def __init__(self, cfg: AttackConfig, predictor):
        from advkit.attacks import recipes
        from advkit.attacks.quality import Scorer

        self.recipes = recipes
        self.attack, self.note = recipes.build(cfg.attack, predictor, lm=cfg.attack_lm, encoder=cfg.attack_encoder,
                                               query_budget=cfg.query_budget, batch_size=cfg.batch_size,
                                               device=cfg.device, min_similarity=cfg.min_similarity)
        self.scorer = Scorer(cfg.attack_encoder, cfg.device)

    def __call__(self, text: str, label: int, index: int) -> dict:
        r = self.recipes.attack_one(self.attack, data.Example(text, label), index)
        success = r["status"] == "success"
        return {**r, **self.scorer.score(r), "prediction_before": r["original_prediction"],
                "prediction_after": r["adversarial_prediction"], "changes": r["words_changed"],
                "marked": mark_words(r["original"], r["adversarial"]) if success else None}

    def describe(self) -> dict:
        return self.scorer.describe()


class Chinese:
    """attack-zh's greedy search with one substitute generator, at attack-zh's default settings."""

    def __init__(self, cfg: AttackConfig, predictor):
        from advkit.attack_zh import label_check, search, substitutes

        self.search, self.predictor = search, predictor
        self.generator = substitutes.load(cfg.attack.removeprefix("zh-"), cfg.attack_lm, cfg.device)
        self.check = label_check.load(cfg.label_check, "")  # negation or none: neither reads a data set
        self.max_queries = cfg.query_budget or AttackZhConfig.max_queries
        self.note = (f"attack-zh's greedy search (BERT-Attack) with {cfg.attack.removeprefix('zh-')} substitutes; "
                     f"top-K {AttackZhConfig.top_k}, max perturbation {AttackZhConfig.max_perturb}, label check "
                     f"{cfg.label_check}")

    def describe(self) -> dict:  # attack-zh's quality judges are not run here: nothing to name
        return {}

    def __call__(self, text: str, label: int, index: int) -> dict:
        r = self.search.greedy_attack(text, label, self.predictor, self.generator, top_k=AttackZhConfig.top_k,
                                      max_perturb=AttackZhConfig.max_perturb, max_queries=self.max_queries,
                                      check=self.check)
        success = r["status"] == "success"
        # attack-zh keeps a failed search's partial text; here, as in English records, only a success has one
        return {"index": index, **r, "adversarial": r["adversarial"] if success else None,
                "changes": r["changed_units"], "marked": mark_units(r["units"], r["changed"]) if success else None}


def check_export(cfg: AttackConfig, overwrite: bool) -> Path | None:
    """--export's file, refused before any work when it exists (unless --overwrite) or cannot be made."""
    if cfg.export is None:
        return None
    path = Path(cfg.export)
    if path.is_dir():
        raise UserError(f"--export {path}: is a directory; name a file")
    if path.exists() and not overwrite:
        raise UserError(f"--export {path}: exists; pass --overwrite or choose another file")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise UserError(f"--export {path}: {parent} is a file, not a folder")
    return path


def export_text(records: list[dict], suffix: str) -> str:
    """The successes as a data set advkit.data reads: a text column `sentence` and the true label id
    (the model's id; its name is in the model's config), the columns of the registered SST-2 files."""
    rows = [(r["adversarial"], r["label"]) for r in records if r["status"] == "success"]
    if suffix == ".jsonl":
        return "".join(json.dumps({"sentence": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows)
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)
        return buffer.getvalue()
    # TSV as advkit.data reads it: no quoting, so a tab or line break inside a text becomes a space
    return "sentence\tlabel\n" + "".join(re.sub(r"[\t\r\n]", " ", t) + f"\t{y}\n" for t, y in rows)


def main(cfg: AttackConfig, out: str | Path | None, overwrite: bool = False) -> dict:
    """Attack every text; returns {records, metrics, labels (the model's names), run (the run
    directory or None), export (the file written or None), exported (its rows)}."""
    require(cfg)
    items = read_inputs(cfg)
    check_language(cfg.attack, items)
    export = check_export(cfg, overwrite)
    run = RunDir(out, "attack", overwrite=overwrite, lock=True) if out is not None else None
    if run is not None:
        run.check_writable()
    try:
        return attack(cfg, items, export, run)
    finally:
        if run is not None:
            run.release()


def attack(cfg: AttackConfig, items: list, export: Path | None, run: RunDir | None) -> dict:
    from advkit.predictor import load_predictor
    from advkit.seeds import seed_everything

    seed_everything(cfg.seed)  # a model without a trained head gets the same random head every time
    predictor = load_predictor(cfg.model, max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device,
                               precision=cfg.precision)
    names = label_names(predictor)
    given = [label_id(item.label, names, item.where if item.label_from == "file" else "--label")
             if item.label is not None else None for item in items]
    predicted = predictor.predict_proba([item.text for item in items]).argmax(-1).tolist()
    attacker = (Chinese if cfg.attack in ZH_ATTACKS else English)(cfg, predictor)
    if run is not None:
        run.create(as_dict(cfg))  # every input checked: only now is --out made
    records = []
    for i in track(range(len(items)), f"attack {cfg.attack}", total=len(items)):
        item, label = items[i], given[i] if given[i] is not None else predicted[i]
        seed_everything(cfg.seed + i)  # per text, as evaluate: a text's record does not depend on the others
        record = {"index": i, "source": item.where, "text": item.text, "label_from": item.label_from or "prediction",
                  **attacker(item.text, label, i)}
        records.append(record)
        if run is not None:
            run.append_record(record)  # on disk as it finishes
    metrics = {**attack_metrics(records), "attack": cfg.attack, "attack_recipe": attacker.note,
               **attacker.describe(),
               "model": str(models.resolve(cfg.model)), "label_names": names,
               "inputs": str(cfg.file) if cfg.file else "--text"}
    exported = 0
    if export is not None:
        exported = sum(r["status"] == "success" for r in records)
        if exported:  # no success: nothing to train on, and no empty file that finetune would refuse
            try:
                export.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(export, export_text(records, export.suffix))
            except OSError as e:
                raise UserError(f"--export {export}: cannot write: {e.strerror}") from None
        metrics["exported"] = exported
    if run is not None:
        run.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
    return {"records": records, "metrics": metrics, "labels": names, "run": run.path if run else None,
            "export": export if exported else None, "exported": exported}


def describe(result: dict) -> list[str]:
    """The printout: per text its status, the original, the adversarial text with the changes marked,
    and the model's label before and after."""
    names, unit = result["labels"], UNIT.get(result["metrics"]["attack"], "word")
    lines = []
    for r in result["records"]:
        before, after = names[r["prediction_before"]], names[r["prediction_after"]]
        if r["status"] == "success":
            k = r["changes"]
            status = f"success ({k} {unit}{'' if k == 1 else 's'} changed, {r['queries']} queries)"
        elif r["status"] == "failed":
            why = f"{r['reason']}, " if r.get("reason") else ""
            status = f"failed (the model kept its label: {why}{r['queries']} queries)"
        else:
            status = f"skipped (already misclassified: true label {names[r['label']]}, the model says {before})"
        shown = r["marked"] if r["marked"] is not None else (
            "(not attacked)" if r["status"] == "skipped" else "(none found)")
        lines += [f"{r['source']}: {status}", f"  original:    {r['text']}", f"  adversarial: {shown}",
                  f"  label:       {before} -> {after}"]
        if r.get("similarity") is not None:  # an English success: how good an example it is
            ppl = (f", fluency perplexity {r['fluency_ppl_before']:.0f} -> {r['fluency_ppl_after']:.0f}"
                   if r.get("fluency_ppl_before") is not None else "")
            lines.append(f"  quality:     similarity {r['similarity']:.3f}{ppl}")
        lines.append("")
    return lines
