"""The Chinese attack table script turns run directories into results/zh/table.md: numbers from the
records, Wilson intervals, and paired tests of pieces against chars."""

import json

from advkit.attack_zh.table import build


def _record(i, status, changed=0, chars=20, rejected=0):
    r = {"index": i, "status": status, "queries": 100, "changed_units": changed, "n_units": 10,
         "changed_chars": changed, "chars": chars, "seconds": 1.0, "rejected": rejected}
    if status == "success":
        r.update(fluency_ppl_before=10.0, fluency_ppl_after=12.0, similarity=0.9)
    return r


def _write(path, records, config=None):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"metrics": {"examples": len(records)}, "config": config or {}}))
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_zh_table_rows_intervals_and_paired_tests(tmp_path):
    config = {"top_k": 48, "max_perturb": 0.4, "max_queries": 2000}
    runs = tmp_path / "attacks" / "albert-tiny-zh" / "chnsenticorp"
    # 10 examples: the victim is wrong on #9 (skipped by every generator)
    pieces = [_record(i, "success", changed=4, rejected=140) for i in range(6)] + \
             [_record(i, "failed", rejected=140) for i in range(6, 9)] + [_record(9, "skipped")]
    chars = [_record(i, "success", changed=2, rejected=80) for i in range(8)] + [_record(8, "failed"),
                                                                                 _record(9, "skipped")]
    _write(runs / "pieces", pieces, config)
    _write(runs / "chars", chars, config)
    _write(runs / "pieces-nocheck", [_record(i, "success", changed=2) for i in range(9)] + [_record(9, "skipped")],
           config)
    (tmp_path / "victims" / "albert-tiny-zh" / "chnsenticorp").mkdir(parents=True)
    (tmp_path / "victims" / "albert-tiny-zh" / "chnsenticorp" / "metrics.json").write_text(json.dumps(
        {"metrics": {"train_examples": 3000, "eval_split": "dev", "eval_accuracy": 0.764, "eval_examples": 1000}}))

    table = build(tmp_path)
    assert "## albert-tiny-zh on chnsenticorp" in table and "dev accuracy 76.4 on 1000" in table
    rows = [line for line in table.splitlines() if "(n=" in line]  # the generator rows
    assert [r.split(" | ")[0] for r in rows] == ["| pieces", "| chars", "| pieces, no label check"]
    # pieces: 6 of 9 attacked; Wilson 95 % interval of 6/9 is [35.4, 87.9]
    assert "| 66.7 [35.4, 87.9] (n=9) |" in rows[0] and "| 140 |" in rows[0] and "| 90.0 |" in rows[0]
    assert "| 88.9 [56.5, 98.0] (n=9) |" in rows[1]
    assert "| words" not in table  # no run, no row
    # the paired comparison: chars changed is 4/20 vs 2/20 on the 6 examples both fooled: +10.0 points,
    # every resample the same, so p is the smallest the bootstrap can give (1/10001) and is marked
    paired = [line for line in table.splitlines() if line.startswith("| chars changed %")]
    assert paired == ["| chars changed % | 6 | +10.0 [+10.0, +10.0] | 0.0001* | larger for pieces |"]
    # the claims (chars changed % is none): success 6 vs 8 of 9 and similarity equal, both undecided; ppl after /
    # before 1.2 for both: no difference, p = 1 after Holm too
    assert "- pieces vs chars, the sections where each claim is reproduced / contradicted / undecided: succeeds " \
           "more often 0 / 0 / 1; reads more fluently (lower ppl after / before) 0 / 0 / 1;" in table
    claims = [line for line in table.split("## The claims")[1].splitlines() if line.startswith("- ")]
    assert claims[0].startswith("- albert-tiny-zh on chnsenticorp: pieces succeeds more often than chars: "
                                "**undecided** (pieces − chars -22.2 [")
    assert "n=9, paired bootstrap; p=" in claims[0] and ", Holm-adjusted p=" in claims[0]
    assert not any("chars changed" in c for c in claims) and not any("no label check" in c for c in claims)


def test_zh_table_label_preservation_spans_and_victim_convergence(tmp_path):
    """The judge's verdicts become a Wilson-interval column and a paired test; spans is compared with
    chars; the victim's convergence and the judge's accuracy are stated."""
    config = {"top_k": 48, "max_perturb": 0.4, "max_queries": 2000}
    runs = tmp_path / "attacks" / "albert-tiny-zh" / "thucnews"

    def judged(i, status, keeps):
        r = dict(_record(i, status, changed=2), label=1)
        if status == "success":
            r.update(judge_before=1, judge_after=1 if keeps else 0)
        return r

    # spans: 8 successes of 10 attacked, the judge keeps the label in 2; chars: 8 successes, all kept
    _write(runs / "spans", [judged(i, "success", i < 2) for i in range(8)] + [judged(8, "failed", False),
                                                                             judged(9, "failed", False)], config)
    _write(runs / "chars", [judged(i, "success", True) for i in range(8)] + [judged(8, "failed", False),
                                                                            judged(9, "failed", False)], config)
    victim = tmp_path / "victims" / "albert-tiny-zh" / "thucnews"
    victim.mkdir(parents=True)
    (victim / "metrics.json").write_text(json.dumps({"metrics": {
        "train_examples": 2700, "eval_split": "dev", "eval_accuracy": 0.8, "eval_examples": 1000, "epochs_trained": 3,
        "train_steps": 255, "dev_accuracy_per_epoch": [0.7, 0.75, 0.74], "converged": True}}))
    for name, model, accuracy in (("thucnews", "m3e-small", 0.9), ("thucnews-roformer-zh", "roformer-zh", 0.8)):
        judge = tmp_path / "judges" / name  # albert-tiny-zh's judge (judges.toml), and m3e-small's, not this one's
        judge.mkdir(parents=True)
        (judge / "metrics.json").write_text(json.dumps({"config": {"model": model}, "metrics": {
            "train_examples": 6000, "eval_split": "dev", "eval_accuracy": accuracy, "eval_examples": 1000}}))

    table = build(tmp_path)
    assert "3 epochs (255 steps; held-out accuracy by epoch 70.0, 75.0, 74.0: converged)" in table
    assert "judge (m3e-small) fine-tuned on 6000 examples, dev accuracy 90.0 on 1000" in table
    assert "roformer-zh) fine-tuned" not in table
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if "(n=10)" in line}
    assert "| 20.0 [5.7, 51.0] (n=10) |" in rows["| spans"]  # 2 of 10 attacked: Wilson [5.7, 51.0]
    assert "| 80.0 [49.0, 94.3] (n=10) |" in rows["| chars"]
    assert "spans vs chars, paired on the same examples" in table
    paired = [line for line in table.splitlines() if line.startswith("| label-preserving success %")]
    assert paired and paired[0].startswith("| label-preserving success % | 10 | -60.0 [")


def test_zh_claims_are_holm_adjusted_a_claim_at_p_003_in_a_family_of_three_is_undecided(tmp_path):
    config = {"top_k": 48, "max_perturb": 0.4, "max_queries": 2000}
    runs = tmp_path / "attacks" / "albert-tiny-zh" / "chnsenticorp"

    def run(i, status, ppl_after, similarity):
        r = _record(i, status, changed=2)
        if status == "success":
            r.update(fluency_ppl_after=ppl_after, similarity=similarity)
        return r

    # 30 examples: pieces alone succeeds on 0-10, chars alone on 11-13, both on 14-29: success difference
    # +26.7 points, paired bootstrap p = 0.0305 (seed 0). On 14-29 pieces reads better (ppl after 11 against
    # 15, p = 1/10001) and its similarity equals chars' on average (0.9 against 0.88 / 0.92, p = 1). No judge:
    # no label-preserving claim. The family: 3 claims.
    pieces = [run(i, "success" if i < 11 or i >= 14 else "failed", 11.0, 0.9) for i in range(30)]
    chars = [run(i, "success" if i >= 11 else "failed", 15.0, 0.88 if i % 2 else 0.92) for i in range(30)]
    _write(runs / "pieces", pieces, config)
    _write(runs / "chars", chars, config)
    table = build(tmp_path)
    claims = [line for line in table.split("## The claims")[1].splitlines() if line.startswith("- ")]
    assert len(claims) == 3 and "the family is the 3 claims below with a p-value" in table
    # Holm: 0.0001 * 3 = 0.0003; 0.0305 * 2 = 0.061 (>= 0.05: undecided, though p < 0.05 before correction); 1
    assert claims[0] == ("- albert-tiny-zh on chnsenticorp: pieces succeeds more often than chars: **undecided** "
                         "(pieces − chars +26.7 [+3.3, +50.0] points, n=30, paired bootstrap; p=0.0305, "
                         "Holm-adjusted p=0.061).")
    assert claims[1] == ("- albert-tiny-zh on chnsenticorp: pieces reads more fluently (lower ppl after / before) than "
                         "chars: **reproduced** (pieces − chars -0.40 [-0.40, -0.40], n=16, paired bootstrap; "
                         "p=0.0001, Holm-adjusted p=0.0003).")
    assert claims[2].startswith("- albert-tiny-zh on chnsenticorp: pieces stays closer in meaning (higher similarity) "
                                "than chars: **undecided** (pieces − chars +0.00 [")
    assert claims[2].endswith("p=1, Holm-adjusted p=1).")
    # the paired table still marks the success difference at p < 0.05 before correction
    assert "| success % | 30 | +26.7 [+3.3, +50.0] | 0.0305* |" in table
    assert "succeeds more often 0 / 0 / 1; reads more fluently (lower ppl after / before) 1 / 0 / 0" in table
