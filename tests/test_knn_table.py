"""The KNN-BERT table script turns run directories into results/knn/table.md: Wilson intervals, t
intervals over seeds, and McNemar tests where per-example records exist."""

import json
import shutil

from advkit.finetune.table import build, main


def _write(path, metrics, records=None):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"command": "finetune", "metrics": metrics}))
    if records is not None:
        (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_table_from_run_directories(tmp_path):
    base = {"train_examples": 1000, "eval_examples": 500, "eval_split": "test", "train_seconds": 60.0}
    rich = tmp_path / "sst2" / "rich"
    # 500 examples: CE right on the first 400, KNN on the first 390 and 20 CE got wrong: 10 vs 20 discordant
    ce = [{"index": i, "label": 1, "prediction": int(i < 400)} for i in range(500)]
    knn = [{"index": i, "label": 1, "prediction": int(i < 390 or 400 <= i < 420)} for i in range(500)]
    _write(rich / "ce", {**base, "eval_accuracy": 0.80, "accuracy_cls": 0.80, "epochs_trained": 3, "converged": True},
           ce)
    for m, acc in (("scl", 0.81), ("moco", 0.79)):
        _write(rich / m, {**base, "eval_accuracy": acc, "accuracy_cls": acc})
    _write(rich / "knn", {**base, "train_examples": 900, "eval_accuracy": 0.82, "accuracy_cls": 0.82,
                          "accuracy_knn": 0.8, "accuracy_combined": 0.82, "lambda_inf": 0.3, "epochs_trained": 4,
                          "converged": False}, knn)
    _write(rich / "knn-deepwordbug", {"accuracy_before": 0.8, "accuracy_under_attack": 0.1, "examples": 20},
           [{"index": i, "status": "failed" if i < 2 else "success"} for i in range(20)])
    _write(rich / "knn-pretrained", {**base, "accuracy_knn": 0.7, "accuracy_combined": 0.6})
    _write(rich / "knn-pwws", {"accuracy_before": 0.8, "accuracy_under_attack": 0.25, "examples": 20},
           [{"index": i, "status": "failed" if i < 5 else "success"} for i in range(20)])
    _write(rich / "ce-pwws", {"accuracy_before": 0.8, "accuracy_under_attack": 0.05, "examples": 20},
           [{"index": i, "status": "failed" if i < 1 else "success"} for i in range(20)])
    _write(rich / "knn-cls-pwws", {"accuracy_before": 0.8, "accuracy_under_attack": 0.1, "examples": 20},
           [{"index": i, "status": "failed" if i < 2 else "success"} for i in range(20)])
    _write(rich / "knn-vote-pwws", {"accuracy_before": 0.8, "accuracy_under_attack": 0.4, "examples": 20})
    _write(rich / "knn-vote-adaptive-pwws", {"accuracy_before": 0.8, "accuracy_under_attack": 0.3, "examples": 20})
    # the head's attack succeeded on examples 2-19; its adversarial examples fool KNN combined on 3 and 4 (of
    # KNN combined's own survivors 0-4) and on 10-19
    _write(rich / "knn-transfer-pwws", {"accuracy": 6 / 18, "examples": 18},
           [{"attack_index": i, "label": 1, "prediction": int(5 <= i < 10 or i == 2)} for i in range(2, 20)])
    seeds = {str(s): {"eval_accuracy": a} for s, a in zip((13, 21, 42, 87, 100), (0.5, 0.6, 0.6, 0.7, 0.6))}
    _write(tmp_path / "sst2" / "shots16" / "ce", {**base, "train_examples": 32, "eval_accuracy": 0.6,
                                                  "eval_accuracy_mean": 0.6, "eval_accuracy_std": 0.0707,
                                                  "per_seed": seeds})
    # KNN combined per seed = CE's + 1..5 points: paired differences mean 3, t = 4.2426 on 4 df, p = 0.0132
    knn_seeds = {s: {"accuracy_combined": r["eval_accuracy"] + d / 100}
                 for (s, r), d in zip(seeds.items(), (1, 2, 3, 4, 5))}
    _write(tmp_path / "sst2" / "shots16" / "knn", {**base, "train_examples": 32, "accuracy_combined_mean": 0.63,
                                                   "accuracy_combined_std": 0.07, "lambda_inf_mean": 0.3,
                                                   "lambda_inf_std": 0.1, "per_seed": knn_seeds})
    table = build(tmp_path)
    row = next(line for line in table.splitlines() if "| rich-source |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Wilson 95 % of 400/500 = [76.3, 83.3]; 410/500 = [78.4, 85.1]
    assert cells[4] == "80.0 [76.3, 83.3]" and cells[9] == "82.0 [78.4, 85.1]"
    assert cells[10] == "70.0 [65.8, 73.9]"  # the pre-trained control's KNN vote
    assert "KNN trains on 900" in cells[2] and cells[11] == "0.3"
    assert cells[3] == "CE 3, KNN 4 (still improving: knn)"
    # McNemar: 10 CE-only, 20 KNN-only: +2.0 points, exact two-sided p = 0.0987
    assert cells[12] == "+2.0, p=0.0987"
    assert cells[13] == "80 -> 5.0 [0.9, 23.6] (n=20) / 80 -> 25.0 [11.2, 46.9] (n=20)"
    assert cells[14] == "+20.0, p=0.125"  # 4 discordant pairs, all for KNN: 2 / 2^4
    assert cells[15] == "– / 80 -> 10.0 [2.8, 30.1] (n=20)" and cells[16] == "–"  # DeepWordBug: KNN only
    few = next(line for line in table.splitlines() if "| 16-shot |" in line)
    # mean 0.6, sample std 0.0707, t(0.975, 4) = 2.776: half-width 2.776 * 0.0707 / sqrt(5) = 8.8 points
    assert "| 60.0 ± 8.8 |" in few and few.count("–") >= 8
    assert "| +3.0 ± 2.0, p=0.0132* (5 seeds, paired t) |" in few
    # the head alone: 2 survive; CE's 1 survivor among them (+5.0, p=1), KNN combined's 5 include them
    # (3 discordant, all for KNN combined: -15.0, p = 2 / 2^3)
    assert ("- sst2, PWWS: the KNN model's linear head alone 80 -> 10.0 [2.8, 30.1] (n=20); against CE +5.0, p=1, "
            "against KNN combined -15.0, p=0.25 (McNemar, same examples). Its KNN vote alone (`--lambda-inf 1`): "
            "80 -> 40.0 [21.9, 61.3] (n=20) by the plain goal, 80 -> 30.0 [14.5, 51.9] (n=20) by the adaptive one. "
            "KNN combined on the head's 18 adversarial "
            "examples: accuracy 33.3 [16.3, 56.3]. KNN combined against the stronger of the two per example (its own "
            "attack, the head's adversarial example): 15.0 [5.2, 36.0] (n=20).") in table
    # The claims: KNN combined's survivors under the stronger attack are 0, 1, 2 against CE's 0: 2 discordant
    # pairs, both for KNN, McNemar p = 2 / 2^2 = 0.5; 16-shot +3.0 ± 2.0 points, p = 0.0132
    # (a family of 3: Holm multiplies the smallest p by 3, the next by 2: 0.0132 -> 0.0397, 0.0987 -> 0.197)
    claims = _claims_of(table)
    assert len(claims) == 3 and "the family is the 3 claims below with a p-value" in table
    assert claims[0].startswith("- sst2, rich-source accuracy: **undecided** (+2.0 [")
    assert claims[0].endswith(" points; p=0.0987, Holm-adjusted p=0.197).")
    assert claims[1] == ("- sst2, 16-shot accuracy: **reproduced** (+3.0 [+1.0, +5.0] points over 5 seeds; p=0.0132, "
                         "Holm-adjusted p=0.0397).")
    assert claims[2].startswith("- sst2, robustness under PWWS (the stronger of its own attack and the head's "
                                "adversarial examples): **undecided** (+10.0 [")
    assert claims[2].endswith(" points; p=0.5, Holm-adjusted p=0.5).")
    # DeepWordBug has no CE run: no claim
    assert "DeepWordBug" not in "".join(claims)
    main([str(tmp_path)])
    assert (tmp_path / "table.md").read_text() == table


def test_run_time_summed_from_provenance_without_counting_seeds_twice(tmp_path):
    def run(path, start, end):
        path.mkdir(parents=True)
        (path / "metrics.json").write_text(json.dumps({
            "metrics": {"train_examples": 32, "eval_examples": 10, "eval_split": "test", "eval_accuracy": 0.5,
                        "train_seconds": 60.0},
            "provenance": {"start": f"2026-12-02T{start}:00+00:00", "end": f"2026-12-02T{end}:00+00:00"}}))

    run(tmp_path / "sst2" / "shots16" / "ce", "10:00", "11:30")  # 1.5 h, over its seeds
    run(tmp_path / "sst2" / "shots16" / "ce" / "seed-13", "10:00", "10:20")  # inside its parent's time
    run(tmp_path / "sst2" / "rich" / "ce-pwws", "12:00", "12:30")
    assert "(training, controls, attacks: 2 run directories) took 2.0 h summed" in build(tmp_path)


def _claims_of(table: str) -> list[str]:
    """The claim lines: the list under "## The paper's claims"."""
    return [line for line in table.split("## The paper's claims")[1].splitlines() if line.startswith("- ")]


def _claim_runs(root, ce_right, knn_right, seed_gain, ce_survives, knn_survives):
    """The runs the claims read, and no more: rich-source predictions (right on the given indices of 500),
    16-shot accuracies per seed (KNN combined = CE's + the gains), and PWWS survivors of 20."""
    base = {"train_examples": 1000, "eval_examples": 500, "eval_split": "test"}
    rich = root / "sst2" / "rich"
    for name, right in (("ce", ce_right), ("knn", knn_right)):
        _write(rich / name, {**base, "eval_accuracy": len(right) / 500, "lambda_inf": 0.5},
               [{"index": i, "label": 1, "prediction": int(i in right)} for i in range(500)])
    for name, survivors in (("ce-pwws", ce_survives), ("knn-pwws", knn_survives)):
        _write(rich / name, {"accuracy_before": 0.8, "accuracy_under_attack": len(survivors) / 20, "examples": 20},
               [{"index": i, "status": "failed" if i in survivors else "success"} for i in range(20)])
    seeds = {s: 0.6 for s in ("13", "21", "42", "87", "100")}
    _write(root / "sst2" / "shots16" / "ce", {**base, "per_seed": {s: {"eval_accuracy": a} for s, a in seeds.items()}})
    _write(root / "sst2" / "shots16" / "knn", {**base, "lambda_inf_mean": 0.5, "lambda_inf_std": 0.0, "per_seed": {
        s: {"accuracy_combined": a + g} for (s, a), g in zip(seeds.items(), seed_gain)}})


def test_a_claim_at_p_003_in_a_family_of_three_is_undecided(tmp_path):
    # rich-source: KNN right on CE's 400 and 6 more: 6 discordant pairs, all for KNN, McNemar p = 2 / 2^6 = 0.03125;
    # 16-shot: gains of 1..5 points, p = 0.0132; PWWS: KNN keeps 0-1 and CE 0: p = 2 / 2^1 -> 1
    _claim_runs(tmp_path, set(range(400)), set(range(406)), (0.01, 0.02, 0.03, 0.04, 0.05), {0}, {0, 1})
    claims = _claims_of(build(tmp_path))
    # Holm over 3: 0.0132 * 3 = 0.0397, 0.03125 * 2 = 0.0625, 1 * 1 = 1
    assert claims[0].startswith("- sst2, rich-source accuracy: **undecided** (+1.2 [")
    assert claims[0].endswith("points; p=0.0312, Holm-adjusted p=0.0625).")
    assert claims[1].startswith("- sst2, 16-shot accuracy: **reproduced** (+3.0 [+1.0, +5.0] points over 5 seeds; "
                                "p=0.0132, Holm-adjusted p=0.0397)")
    assert "**undecided** (+5.0 [" in claims[2] and claims[2].endswith("p=1, Holm-adjusted p=1).")
    # the same claim alone, its family of one (no 16-shot, no attack runs): not adjusted, reproduced
    for run in ("shots16", "rich/ce-pwws", "rich/knn-pwws"):
        shutil.rmtree(tmp_path / "sst2" / run)
    claims = _claims_of(build(tmp_path))
    assert len(claims) == 1 and claims[0].startswith("- sst2, rich-source accuracy: **reproduced** (+1.2 [")
    assert claims[0].endswith("points; p=0.0312, Holm-adjusted p=0.0312).")


def test_a_claim_where_ce_is_higher_is_contradicted_not_undecided(tmp_path):
    # rich-source: CE right on 0-409, KNN on 0-399: 10 discordant pairs, all for CE, McNemar p = 2 / 2^10 = 0.00195
    _claim_runs(tmp_path, set(range(410)), set(range(400)), (0.01, 0.02, 0.03, 0.04, 0.05), {0}, {0, 1})
    claims = _claims_of(build(tmp_path))
    # Holm: 0.00195 * 3 = 0.00586 < 0.05, against KNN: contradicted
    assert claims[0].startswith("- sst2, rich-source accuracy: **contradicted** (-2.0 [")
    assert claims[0].endswith("points; p=0.00195, Holm-adjusted p=0.00586).")


def test_seeds_judge_knn_under_the_strongest_attack_pooled_over_seeds(tmp_path):
    """ROOT/sst2/seeds/<seed>/: KNN-BERT is right under the strongest attack only where its plain PWWS, the
    adaptive PWWS and its head's adversarial examples all failed; the claim pools the seeds (McNemar on the
    summed discordant pairs) and sits in the Holm family with the others."""
    for seed in ("1", "2"):
        here = tmp_path / "sst2" / "seeds" / seed
        _write(here / "ce", {"eval_accuracy": 0.8, "eval_examples": 100})
        _write(here / "knn", {"accuracy_combined": 0.82, "eval_examples": 100, "lambda_inf": 1.0})
        attacked = {"accuracy_before": 0.8, "examples": 10}

        def attack(name, survivors):
            _write(here / name, {**attacked, "accuracy_under_attack": len(survivors) / 10},
                   [{"index": i, "status": "failed" if i in survivors else "success"} for i in range(10)])

        attack("ce-pwws", {0})              # CE survives on example 0 only
        attack("knn-pwws", set(range(8)))   # the plain attack leaves KNN right on 0-7
        attack("knn-adaptive-pwws", set(range(6)) | {9})  # the adaptive one on 0-5 and 9
        # the head's adversarial example of example 5 fools the vote, that of example 4 does not
        _write(here / "knn-transfer-pwws", {"examples": 2},
               [{"index": 0, "attack_index": 5, "label": 1, "prediction": 0},
                {"index": 1, "attack_index": 4, "label": 1, "prediction": 1}])
    table = build(tmp_path)
    section = table.split("## Robustness over seeds")[1].split("## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| sst2 |")]
    assert len(rows) == 2 and rows[0].startswith("| sst2 | 1 | ")
    # strongest: right on 0-4 (5 of 10); adaptive - plain: 1 gained (9), 2 lost (6, 7)
    assert "| 50.0 [" in rows[0] and "(n=10) |" in rows[0]
    assert "| -10.0, p=1 |" in rows[0]
    # strongest vs CE per seed: KNN right alone on 1-4 (4), CE alone on none -> +40.0, p = 2/2^4
    assert "| +40.0, p=0.125 |" in rows[0]
    claim = next(line for line in _claims_of(table) if "over 2 seeds" in line)
    # pooled: 8 discordant pairs all for KNN -> p = 2 / 2^8; the only claim with a p: Holm leaves it
    assert "+40.0 [" in claim and "points over 20 (seed, example) pairs" in claim
    assert claim.endswith("p=0.00781, Holm-adjusted p=0.00781).") and "**reproduced**" in claim
    # without the adaptive run a seed has no strongest cell and drops out of the pooled claim
    shutil.rmtree(tmp_path / "sst2" / "seeds" / "2" / "knn-adaptive-pwws")
    claim = next(line for line in _claims_of(build(tmp_path)) if "robustness under PWWS over" in line)
    assert "over 1 seed (" in claim and "p=0.125," in claim


def test_a_head_attack_without_successes_leaves_nothing_to_transfer(tmp_path):
    here = tmp_path / "sst2" / "seeds" / "1"
    for name, survivors in (("ce-pwws", set()), ("knn-pwws", {0, 1}), ("knn-adaptive-pwws", {1, 2})):
        _write(here / name, {"accuracy_before": 1.0, "accuracy_under_attack": len(survivors) / 4, "examples": 4},
               [{"index": i, "status": "failed" if i in survivors else "success"} for i in range(4)])
    table = build(tmp_path)
    assert "robustness under PWWS over" not in table  # the head's attack has not run: no strongest yet
    _write(here / "knn-cls-pwws", {"accuracy_before": 1.0, "accuracy_under_attack": 1.0, "examples": 4,
                                   "successes": 0})
    rows = [line for line in build(tmp_path).splitlines() if line.startswith("| sst2 | 1 |")]
    assert "| 25.0 [" in rows[0]  # right under both of its own attacks on example 1 only


def test_at_rows_and_a_flagged_lambda_with_its_vote_attacked_alone(tmp_path):
    """AT beside CE and KNN-BERT per seed, pooled against both outside the claims' family; a lambda_inf
    chosen within one standard error is marked † with its margin, and the vote attacked alone shows."""
    here = tmp_path / "sst2" / "seeds" / "1"
    _write(here / "ce", {"eval_accuracy": 0.8, "eval_examples": 10},
           [{"index": i, "label": 1, "prediction": int(i < 8)} for i in range(10)])
    _write(here / "at", {"eval_accuracy": 0.9, "eval_examples": 10, "epochs_trained": 2, "converged": True,
                         "adversarial_training": {"ratio": 0.2, "warmup_epochs": 1, "query_budget": 50,
                                                  "per_epoch": {"2": {"attacked": 30, "succeeded": 12, "queries": 400}}}},
           [{"index": i, "label": 1, "prediction": int(i < 9)} for i in range(10)])
    # dev: 0.0 and 1.0 tie at 0.866 on 500 examples (SE 1.5 points): flagged; the vote alone was attacked
    _write(here / "knn", {"accuracy_combined": 0.82, "eval_examples": 10, "lambda_inf": 0.0,
                          "lambda_inf_selected_on": "dev (500 of 872 examples)",
                          "selection_accuracy": {"0.0": 0.866, "0.5": 0.85, "1.0": 0.866}})

    def attack(name, survivors, **extra):
        _write(here / name, {"accuracy_before": 1.0, "accuracy_under_attack": len(survivors) / 10, "examples": 10,
                             **extra}, [{"index": i, "status": "failed" if i in survivors else "success"}
                                        for i in range(10)])

    attack("ce-pwws", {0})
    attack("at-pwws", {0, 1, 2})  # AT survives on 0-2
    attack("knn-pwws", set(range(6)))
    attack("knn-adaptive-pwws", set(range(6)))
    attack("knn-cls-pwws", set(range(6)), successes=0)
    attack("knn-vote-pwws", set(range(7)))
    attack("knn-vote-adaptive-pwws", set(range(4)))
    table = build(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| sst2 | 1 |"))
    assert "| 90.0 [" in row  # AT clean
    assert "| 0.0 † (dev margin 0.0 over 1, SE 1.5, n=500) |" in row
    assert "| 100 -> 70.0 [" in row and " / 100 -> 40.0 [" in row  # the vote alone: plain / adaptive
    assert "| 100 -> 30.0 [" in row  # AT under PWWS
    assert "| +20.0, p=0.5 | +30.0, p=0.25 |" in row  # AT − CE (2 vs 0), strongest KNN − AT (3 vs 0)
    against = table.split("Against adversarial training")[1].split("## ")[0]
    assert "- sst2, AT − CE, clean accuracy on the whole test split: +10.0 [" in against
    assert "- sst2, KNN-BERT under the strongest attack − AT under PWWS: +30.0 [" in against
    assert "over 1 seed (10 (seed, example) pairs), McNemar p=0.25" in against
    assert ("- sst2, seed 1, AT's training: 2 epochs (1 clean, until dev accuracy stopped improving); 30 examples "
            "attacked (0.2 of each batch, 50 queries each), 12 adversarial examples joined their batches.") in against
    assert not any("AT" in line for line in _claims_of(table))  # context, not one of the paper's claims
