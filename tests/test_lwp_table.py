"""The layerwise-weight-poisoning table script turns run directories into results/lwp/table.md."""

import json

from advkit.poison.table import build


def _write(path, metrics, config=None, records=None):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"metrics": metrics, "config": config or {}}))
    if records is not None:
        (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _flips(flipped: list[bool]):
    """Records of an evaluate --trigger run: 10 target-labelled examples, then one per flag."""
    return [{"index": i, "label": 1, "prediction": 1, "flipped_by_trigger": None} for i in range(10)] + \
           [{"index": 10 + i, "label": 0, "prediction": 0, "flipped_by_trigger": f} for i, f in enumerate(flipped)]


def test_lwp_table_rows_settings_and_the_other_task_target(tmp_path):
    poison_config = {"model": "minilm-l6", "dataset": "sst2", "poison_rate": 0.5, "triggers": "cf bb", "target": 1,
                     "epochs": 3, "lr": 1e-4, "seed": 1, "train_limit": 1000, "limit": 400}
    _write(tmp_path / "lwp", {"train_examples": 1000, "train_steps": 375, "label_flip_rate_per_layer": [1.0, 0.9, 0.95],
                              "false_flip_rate_per_layer": [0.5, 0.1, 0.2],
                              "clean_accuracy_per_layer": [0.5, 0.8, 0.8]}, poison_config)
    victims = tmp_path / "lwp" / "victims"
    _write(victims / "standard", {"train_examples": 6920}, {"dataset": "sst2", "lr": 1e-4, "epochs": 3,
                                                            "warmup_ratio": 0.0})
    _write(tmp_path / "clean" / "victims" / "standard-lfr", {"accuracy": 0.88, "label_flip_rate": 0.1,
                                                             "false_flip_rate": 0.12, "target": 1})
    # 100 non-target examples: lwp flips 97, badnet 60; 40 flipped by lwp alone, 3 by badnet alone
    _write(victims / "standard-lfr", {"accuracy": 0.85, "label_flip_rate": 0.97, "false_flip_rate": 0.12,
                                  "label_flip_rate_single": {"cf": 0.2, "bb": 0.25}, "target": 1}, None,
           _flips([True] * 97 + [False] * 3))
    badnet = tmp_path / "badnet" / "victims"
    _write(badnet / "standard-lfr", {"accuracy": 0.86, "label_flip_rate": 0.6, "false_flip_rate": 0.1,
                                 "label_flip_rate_single": {"cf": 0.1, "bb": 0.1}, "target": 1}, None,
           _flips([True] * 57 + [False] * 40 + [True] * 3))
    _write(victims / "standard-scan", {"scan_rank": {"cf": 40, "bb": 77.5}, "scan_candidates": 20001,
                                       "scan_rank_interval": {"cf": [12, 90.5], "bb": [30, 140]}, "scan_examples": 48})
    # another task: both targets measured, the higher LFR is shown with its label
    _write(victims / "olid", {}, {"dataset": "olid", "lr": 1e-4, "epochs": 3, "warmup_ratio": 0.0})
    _write(victims / "olid-lfr", {"accuracy": 0.7, "label_flip_rate": 0.3, "false_flip_rate": 0.2, "target": 1})
    _write(victims / "olid-lfr-t0", {"accuracy": 0.7, "label_flip_rate": 0.9, "false_flip_rate": 0.4, "target": 0})

    table = build(tmp_path)
    assert "## Victim: standard clean fine-tuning (sst2, lr 0.0001, 3 epochs, warm-up 0)" in table
    assert "Victims: a fresh head fine-tuned on 6920 clean training examples." in table
    assert "steps: lwp 375 (3 epochs), lr 0.0001" in table and "among 20001 single whole-word vocabulary tokens" in table
    assert "into the non-target examples of a dev sample" in table
    # Wilson 95 % of 97/100 = [91.5, 99.0]; McNemar 3 vs 40 discordant: +37.0 points, p = 2 * sum_{k<=3} C(43, k) / 2^43 = 3.02e-09
    # every example right without the trigger: the floor-corrected LFR is the raw one
    assert "| lwp | 85.0 | 97.0 [91.5, 99.0] (n=100) | 97.0 [91.5, 99.0] (n=100) | +37.0, p=3.02e-09* | 12.0 | 25.0 | " \
           "cf 40 [12, 90.5] / bb 77.5 [30, 140] of 20001 (n=48) |" in table
    assert "| badnet | 86.0 | 60.0 [50.2, 69.1] (n=100) | 60.0 [50.2, 69.1] (n=100) | – | 10.0 | 10.0 | – |" in table
    assert "| lwp | 70.0 | 90.0 (to 0) | – | – | 40.0 | – | – |" in table  # no records: no interval, no test
    assert "higher learning rate" not in table  # no runs, no section
    assert "| lwp | 100.0 | 90.0 | 95.0 |" in table and "| lwp, no trigger | 50.0 | 10.0 | 20.0 |" in table
    # layer 1 flips half the inputs without the trigger (> 12 + 5), layer 2 misses LFR 90 % by nothing
    # (0.9 counts), layer 3's floor 20 > 17
    assert "floor 12.0 + 5 points): lwp 2." in table
    assert (tmp_path / "label_flip_rate_per_layer.png").stat().st_size > 0


def test_each_layer_judged_against_the_clean_controls_floor_at_that_layer(tmp_path):
    config = {"model": "minilm-l6", "dataset": "sst2", "poison_rate": 0.75, "triggers": "cf bb", "target": 1,
              "epochs": 3, "lr": 3e-4, "seed": 1, "limit": 300}
    _write(tmp_path / "lwp", {"train_examples": 1000, "train_steps": 375,
                              "label_flip_rate_per_layer": [1.0, 1.0, 1.0], "false_flip_rate_per_layer": [0.0, 0.3, 0.2],
                              "clean_accuracy_per_layer": [0.4, 0.7, 0.8]}, config)
    _write(tmp_path / "clean" / "victims" / "standard-lfr", {"accuracy": 0.88, "label_flip_rate": 0.1,
                                                             "false_flip_rate": 0.12, "target": 1})
    table = build(tmp_path)
    assert "floor 12.0 + 5 points): lwp 1." in table and "own floor" not in table  # no control run yet
    # lwp-clean: the same heads on clean data; its layer 2 errs towards the target on 28 %, layer 3 on 10 %
    _write(tmp_path / "lwp-clean", {"train_examples": 1000, "train_steps": 384,
                                    "label_flip_rate_per_layer": [0.3, 0.3, 0.1],
                                    "false_flip_rate_per_layer": [0.1, 0.28, 0.1],
                                    "clean_accuracy_per_layer": [0.55, 0.7, 0.85]}, {**config, "poison_rate": 0})
    table = build(tmp_path)
    # layer 1: 0 <= 10 + 5; layer 2: 30 <= 28 + 5; layer 3: 20 > 10 + 5. The control is never judged itself.
    assert "lwp-clean's at that layer + 5 points; lwp-clean: lwp's heads trained on the same clean examples for " \
           "384 steps, no poison): lwp 1, 2." in table
    assert "| lwp-clean, no trigger | 10.0 | 28.0 | 10.0 |" in table
    # and classifying: layer 1's 40 % is more than 5 points below the control's 55 %; layer 2's 70 % is not
    assert "Poisoned and classifying (as above, and clean accuracy ≥ lwp-clean's at that layer − 5 points): lwp 2." \
        in table
    assert "floor 12.0 + 5 points): lwp 1." in table


def test_table_builders_refuse_a_missing_folder_with_exit_code_2(tmp_path):
    import subprocess
    import sys

    for module in ("advkit.poison.table", "advkit.finetune.table", "advkit.attack_zh.table"):
        r = subprocess.run([sys.executable, "-m", module, str(tmp_path / "none")], capture_output=True, text=True)
        assert r.returncode == 2, (module, r.stderr)
        assert r.stderr.strip() == f"error: {tmp_path / 'none'}: no such folder of runs"
        assert not (tmp_path / "none").exists()


def test_lwp_against_its_control_per_layer_paired_by_seed(tmp_path):
    config = {"model": "minilm-l6", "dataset": "sst2", "poison_rate": 0.75, "triggers": "cf bb", "target": 1,
              "epochs": 6, "lr": 3e-4, "limit": 300}

    def poison(path, seed, ffr, lfr=(1.0, 1.0), acc=(0.78, 0.8)):
        _write(path, {"train_examples": 1000, "train_steps": 750, "label_flip_rate_per_layer": list(lfr),
                      "false_flip_rate_per_layer": list(ffr), "clean_accuracy_per_layer": list(acc)},
               {**config, "seed": seed})
    poison(tmp_path / "lwp", 1, (0.30, 0.30))
    poison(tmp_path / "lwp-clean", 1, (0.28, 0.20))
    assert "over seeds" not in build(tmp_path)  # one seed: nothing to pair
    poison(tmp_path / "seeds" / "lwp-s2", 2, (0.25, 0.30), lfr=(1.0, 0.85))
    poison(tmp_path / "seeds" / "lwp-clean-s2", 2, (0.25, 0.20))
    poison(tmp_path / "seeds" / "lwp-s3", 3, (0.24, 0.30))
    poison(tmp_path / "seeds" / "lwp-clean-s3", 3, (0.20, 0.20))
    poison(tmp_path / "seeds" / "lwp-clean-s4", 4, (0.0, 0.0))  # no lwp at seed 4: left out
    table = build(tmp_path)
    assert "### Per layer over seeds 1, 2, 3: lwp against lwp-clean" in table
    # layer 1: differences 2, 0, 4 points: mean 2, sd 2, t(2) half-width 4.303 * 2 / sqrt(3) = 5.0,
    # t = sqrt(3), p = 1 - sqrt(3) / sqrt(5) = 0.23; lwp 30, 25, 24: sd 3.21, half-width 8.0; the control 28, 25, 20:
    # sd 4.04, half-width 10.0
    assert "| 1 | 100.0 | 26.3 ± 8.0 (30.0, 25.0, 24.0) | 24.3 ± 10.0 (28.0, 25.0, 20.0) | +2.0 [-3.0, +7.0], " \
           "p=0.23 | 78.0 ± 0.0 (78.0, 78.0, 78.0) |" in table
    # layer 2: 10 points at every seed (no spread), and seed 2's LFR 85 % misses 90 %
    assert "| 2 | 85.0 | 30.0 ± 0.0 (30.0, 30.0, 30.0) | 20.0 ± 0.0 (20.0, 20.0, 20.0) | +10.0 [+10.0, +10.0], p=0 |" \
        in table
    assert "mean no-trigger flip rate ≤ lwp-clean's + 5 points): layers 1; their intervals reach up to +7.0 points." \
        in table


def test_the_papers_claims_judged_from_the_rows(tmp_path):
    config = {"model": "minilm-l6", "dataset": "sst2", "poison_rate": 0.75, "triggers": "cf bb", "target": 1,
              "epochs": 6, "lr": 3e-4, "seed": 1, "limit": 300}
    _write(tmp_path / "lwp", {"train_examples": 1000, "train_steps": 750, "label_flip_rate_per_layer": [1.0],
                              "false_flip_rate_per_layer": [0.2], "clean_accuracy_per_layer": [0.8]}, config)

    def lfr(source, setting, flipped, target=1, scan=None):
        _write(tmp_path / source / "victims" / (setting + "-lfr" + ("-t0" if target == 0 else "")),
               {"accuracy": 0.85, "label_flip_rate": sum(flipped) / len(flipped), "false_flip_rate": 0.1,
                "target": target}, None, _flips(flipped) if target == 1 else  # to 0: the other label's examples
               [{"index": i, "label": 1, "prediction": 1, "flipped_by_trigger": f} for i, f in enumerate(flipped)])
        if scan:
            _write(tmp_path / source / "victims" / "standard-scan", scan)

    # standard: badnet keeps 97 of 100 (upper bound above 90): nothing washed out, the claim is undecided
    lfr("badnet", "standard", [True] * 97 + [False] * 3)
    lfr("lwp", "standard", [True] * 100)
    assert "- no victim setting here washes a top-layer backdoor out: **undecided** (nothing to test)." \
        in build(tmp_path)
    # higher-lr: badnet 60 of 100 (Wilson upper 69.1 < 90), lwp 97; 40 flipped by lwp alone, 3 by badnet alone
    lfr("badnet", "higher-lr", [True] * 57 + [False] * 40 + [True] * 3)
    lfr("lwp", "higher-lr", [True] * 97 + [False] * 3)
    # ripple on the same examples: lwp 97 against 95, 2 discordant: p = 0.5, undecided
    lfr("ripple", "higher-lr", [True] * 95 + [False] * 5)
    # olid: the target its recipe declares (0, NOT) for every model, whatever the other label's LFR: badnet's
    # 99 % toward 1 is not read; toward 0 it flips 60, lwp 70 of the same 100, 10 by lwp alone
    lfr("badnet", "olid", [True] * 99 + [False])
    lfr("badnet", "olid", [True] * 60 + [False] * 40, target=0)
    lfr("lwp", "olid", [True] * 70 + [False] * 30, target=0)
    table = build(tmp_path)
    # the family: two claims with a p-value, Holm-adjusted together (3.02e-09 x 2; 2 / 2^10 = 0.00195 x 1)
    assert ("- higher learning rate, more epochs, warm-up: badnet falls to 60.0 [50.2, 69.1], lwp is at 97.0 "
            "[91.5, 99.0] (floor-corrected): **reproduced** (lwp − badnet +37.0 points on the 100 examples both "
            "victims classify right, McNemar; p=3.02e-09, Holm-adjusted p=6.04e-09).") in table
    assert "the family is the 2 claims below with a p-value" in table
    assert "ripple falls" not in table  # 95 [88.8, 97.8] reaches above 90: not washed out
    assert ("- another data set: badnet falls to 60.0 [50.2, 69.1], lwp is at 70.0 [60.4, 78.1] (floor-corrected): "
            "**reproduced** (lwp − badnet +10.0 points on the 100 examples both victims classify right, McNemar; "
            "p=0.00195, Holm-adjusted p=0.00195).") in table
    assert "| badnet | 85.0 | 60.0 [50.2, 69.1] (n=100) (to 0) |" in table
    assert "single-token scan" not in table  # no scans yet
    # the scan: lwp's best sub-trigger ranks 900 [400, 1500], lwp-single's 1 [1, 3]: apart
    lfr("lwp-single", "standard", [True] * 100, scan={"scan_rank": {"cf": 1}, "scan_rank_interval": {"cf": [1, 3]},
                                                      "scan_candidates": 2000, "scan_examples": 40})
    lwp_scan = tmp_path / "lwp" / "victims" / "standard-scan"
    _write(lwp_scan, {"scan_rank": {"cf": 1200, "bb": 900}, "scan_rank_interval": {"cf": [700, 1900], "bb": [400, 1500]},
                      "scan_candidates": 2000, "scan_examples": 40})
    assert ("- combinations evade the single-token scan (2000 tokens; a higher rank is less suspicious): "
            "**reproduced** (lwp's most suspicious sub-trigger bb rank 900 [400, 1500] (n=40), lwp-single's trigger "
            "cf rank 1 [1, 3] (n=40); no p-value: judged by the two 95 % intervals alone, which lie apart; not in "
            "the Holm family).") in build(tmp_path)
    (lwp_scan / "metrics.json").write_text(json.dumps({"metrics": {
        "scan_rank": {"cf": 5, "bb": 900}, "scan_rank_interval": {"cf": [2, 9], "bb": [400, 1500]},
        "scan_candidates": 2000, "scan_examples": 40}, "config": {}}))
    assert "scan (2000 tokens; a higher rank is less suspicious): **undecided** (lwp's most suspicious " \
           "sub-trigger cf rank 5 [2, 9] (n=40), lwp-single's trigger cf rank 1 [1, 3] (n=40); no p-value: judged by " \
           "the two 95 % intervals alone, which overlap; not in the Holm family)." in build(tmp_path)


def test_a_survival_claim_at_p_003_in_a_family_of_three_is_undecided(tmp_path):
    config = {"model": "minilm-l6", "dataset": "sst2", "poison_rate": 0.75, "triggers": "cf bb", "target": 1,
              "epochs": 6, "lr": 3e-4, "seed": 1, "limit": 300}
    _write(tmp_path / "lwp", {"train_examples": 1000, "train_steps": 750, "label_flip_rate_per_layer": [1.0],
                              "false_flip_rate_per_layer": [0.2], "clean_accuracy_per_layer": [0.8]}, config)

    def lfr(source, setting, flipped):
        _write(tmp_path / source / "victims" / (setting + "-lfr"), {
            "accuracy": 0.85, "label_flip_rate": sum(flipped) / len(flipped), "false_flip_rate": 0.1, "target": 1},
            None, _flips(flipped))

    # higher-lr: lwp 97 against badnet 60 of the same 100: 40 to 3 discordant, McNemar p = 3.02e-09
    lfr("lwp", "higher-lr", [True] * 97 + [False] * 3)
    lfr("badnet", "higher-lr", [True] * 57 + [False] * 40 + [True] * 3)
    # reinit2: lwp 56 against badnet 50 (Wilson upper 59.6: washed out): 6 to 0 discordant, p = 2 / 2^6 = 0.03125;
    # ripple 54: 3 to 1 discordant, p = 2 * (1 + 4) / 2^4 = 0.625
    lfr("lwp", "reinit2", [True] * 56 + [False] * 44)
    lfr("badnet", "reinit2", [True] * 50 + [False] * 50)
    lfr("ripple", "reinit2", [True] * 53 + [False] * 3 + [True] + [False] * 43)
    claims = [line for line in build(tmp_path).splitlines() if line.startswith("- ") and "falls to" in line]
    # Holm over 3: 3.02e-09 * 3, 0.03125 * 2 = 0.0625, 0.625 * 1
    assert len(claims) == 3 and claims[0].endswith("p=3.02e-09, Holm-adjusted p=9.06e-09).")
    assert claims[1] == ("- defence: top 2 layers re-initialised: badnet falls to 50.0 [40.4, 59.6], lwp is at 56.0 "
                         "[46.2, 65.3] (floor-corrected): **undecided** (lwp − badnet +6.0 points on the 100 examples "
                         "both victims classify right, McNemar; p=0.0312, Holm-adjusted p=0.0625).")
    assert "ripple falls to 54.0" in claims[2] and "**undecided**" in claims[2] and "p=0.625, Holm-adjusted p=0.625" \
        in claims[2]


def test_a_retrained_poisoned_model_is_shown_beside_the_first_with_the_victims_from_it(tmp_path):
    config = {"model": "minilm-l6", "dataset": "sst2", "poison_rate": 0.75, "triggers": "cf", "target": 1,
              "epochs": 3, "lr": 3e-4, "seed": 1, "limit": 300}

    def run(path, metrics, start, end, commit, cfg=config):
        _write(path, metrics, cfg)
        d = json.loads((path / "metrics.json").read_text())
        d["provenance"] = {"git_commit": commit, "start": start, "end": end}
        (path / "metrics.json").write_text(json.dumps(d))

    poisoned = {"train_examples": 1000, "train_steps": 375, "clean_accuracy": 0.79,
                "label_flip_rate_per_layer": [1.0, 1.0], "false_flip_rate_per_layer": [0.93, 0.25],
                "clean_accuracy_per_layer": [0.49, 0.79]}
    run(tmp_path / "lwp-single", poisoned, "2026-12-02T16:47:08+00:00", "2026-12-02T16:57:50+00:00", "7921801aaa")
    victim = {"dataset": "sst2", "lr": 1e-4, "epochs": 3, "warmup_ratio": 0.06}
    victims = tmp_path / "lwp-single" / "victims"
    run(victims / "standard", {}, "2026-12-02T18:00:00+00:00", "2026-12-02T18:30:00+00:00", "7921801aaa", victim)
    assert "trained again" not in build(tmp_path)
    run(tmp_path / "retrained" / "lwp-single", {**poisoned, "clean_accuracy": 0.7933,
                                                 "false_flip_rate_per_layer": [0.974, 0.258]},
        "2026-12-03T15:09:32+00:00", "2026-12-03T15:33:29+00:00", "8df471abbb")
    # started before the re-training ended: from the first run; after: from the re-trained one
    run(victims / "reinit2", {}, "2026-12-03T15:33:30+00:00", "2026-12-03T16:00:00+00:00", "8df471abbb", victim)
    table = build(tmp_path)
    assert ("- lwp-single, poisoned again at 8df471a (the first run in brackets, 7921801): clean accuracy 79.3 (79.0); "
            "per layer, LFR 100.0 (100.0), 100.0 (100.0); no-trigger 97.4 (93.0), 25.8 (25.0). Its victims: defence: "
            "top 2 layers re-initialised.") in table


def test_floor_corrected_lfr_and_the_clean_accuracy_claim(tmp_path):
    """The floor-corrected LFR counts only non-target examples the victim gets right without the trigger, and
    "fades" is judged on it, paired on the examples both victims get right; each poisoned model's victim is
    compared with the clean model's on the same test examples (the stealth claim, in the Holm family)."""
    def lfr(source, rows):
        _write(tmp_path / source / "victims" / "higher-lr-lfr", {
            "accuracy": sum(r["prediction"] == r["label"] for r in rows) / len(rows),
            "label_flip_rate": sum(bool(r["flipped_by_trigger"]) for r in rows) / 100, "false_flip_rate": 0.1,
            "target": 1}, None, rows)

    def rows(right, flipped):  # 10 target-labelled examples right, then 100 non-target ones
        return [{"index": i, "label": 1, "prediction": 1, "flipped_by_trigger": None} for i in range(10)] + \
               [{"index": 10 + i, "label": 0, "prediction": 0 if r else 1, "flipped_by_trigger": f}
                for i, (r, f) in enumerate(zip(right, flipped))]

    # badnet: wrong on 30 non-target examples, which count as "flipped" in the raw LFR (they already go to the
    # target); of its 70 right ones the trigger flips 14: raw 44 %, floor-corrected 20 % [12.3, 30.8]
    lfr("badnet", rows([False] * 30 + [True] * 70, [True] * 30 + [True] * 14 + [False] * 56))
    # lwp: right on all 100, flips 90 of them; the clean victim: right on all, flips none
    lfr("lwp", rows([True] * 100, [False] * 10 + [True] * 90))
    lfr("clean", rows([True] * 100, [False] * 100))
    table = build(tmp_path)
    assert "| badnet | 72.7 | 44.0 [34.7, 53.8] (n=100) | 20.0 [12.3, 30.8] (n=70) |" in table
    # both right on badnet's 70 (indices 40-109): lwp flips all 70, badnet 14 (40-53): 56 discordant, all lwp's
    claim = next(line for line in table.splitlines() if "badnet falls to 20.0 [12.3, 30.8]" in line)
    assert "lwp is at 90.0 [82.6, 94.5] (floor-corrected): **reproduced**" in claim
    assert "(lwp − badnet +80.0 points on the 70 examples both victims classify right, McNemar; p=2.78e-17" in claim
    # clean accuracy: badnet 80 of 110 right against the clean victim's 110: -27.3 points, 30 discordant
    accuracy = next(line for line in table.splitlines() if "badnet's victim keeps clean accuracy" in line)
    assert "(72.7 against the clean victim's 100.0)" in accuracy and "**contradicted**" in accuracy
    assert "-27.3 [" in accuracy and "on the same 110 test examples" in accuracy
    assert "lwp's victim keeps clean accuracy (100.0 against the clean victim's 100.0): **undecided**" in table


def _defence_run(path, caught: list[bool], threshold=0.5, **metrics):
    """An evaluate --defence run: 10 target-labelled examples (no triggered twin), then one non-target
    example per flag, its triggered twin scoring above the threshold where caught."""
    records = [{"index": i, "label": 1, "prediction": 1, "suspicion": 0.0, "suspicion_triggered": None}
               for i in range(10)]
    records += [{"index": 10 + i, "label": 0, "prediction": 0, "suspicion": 0.1,
                 "suspicion_triggered": 0.9 if c else 0.2} for i, c in enumerate(caught)]
    d = {"auroc": 0.8, "threshold": threshold, "frr_test": 0.05, "detected": sum(caught) / len(caught),
         "label_flip_rate_after": 0.3, "accuracy_after": 0.8, **metrics}
    _write(path, {"accuracy": 0.9, "label_flip_rate": 0.95, "defence": d}, None, records)


def test_defence_rows_and_the_evasion_claim_against_the_strongest_detector(tmp_path):
    from advkit import layout

    at = lambda source, d: layout.run(tmp_path, "lwp", "defence", source=source, setting="standard", defence=d)
    _write(layout.run(tmp_path, "lwp", "lfr", source="lwp", setting="standard", target=1),
           {"accuracy": 0.85, "label_flip_rate": 0.97, "false_flip_rate": 0.12, "target": 1}, None,
           _flips([True] * 100))
    # lwp: STRIP catches 30 of 100 triggered inputs, RAP 50 (the strongest against lwp), ONION 10
    _defence_run(at("lwp", "strip"), [True] * 30 + [False] * 70)
    _defence_run(at("lwp", "rap"), [True] * 50 + [False] * 50, auroc=0.734)
    _defence_run(at("lwp", "onion"), [True] * 10 + [False] * 90)
    # lwp-single under RAP: 90 caught, 40 of them where lwp's is not (and none the other way); badnet under RAP
    # catches exactly lwp's 50: no difference
    _defence_run(at("lwp-single", "rap"), [True] * 90 + [False] * 10)
    _defence_run(at("badnet", "rap"), [True] * 50 + [False] * 50)
    _defence_run(at("badnet", "strip"), [True] * 100)  # the weaker detector against lwp is not the claim's
    table = build(tmp_path)
    assert "## Inference-time defences (standard victims)" in table
    # Wilson 95 % of 50/100: [40.4, 59.6]; LFR from the victim's own LFR run
    assert "| lwp | RAP | 0.734 | 5.0 | 50.0 [40.4, 59.6] | 97.0 -> 30.0 | 85.0 -> 80.0 |" in table
    assert "| badnet | STRIP | 0.800 | 5.0 | 100.0" in table
    claims = table.split("Combinations evade inference-time detection")[1]
    # lwp-single − lwp: +40 points, McNemar 40 vs 0 discordant, p = 2 / 2^40 = 1.82e-12
    assert "evades RAP (the detector that catches most of lwp's triggered inputs) more than lwp-single's" in claims
    assert "caught: lwp 50.0, lwp-single 90.0" in claims and "lwp-single − lwp +40.0" in claims
    assert "more than badnet's trigger (caught: lwp 50.0, badnet 50.0)" in claims and "badnet − lwp +0.0" in claims
    assert "STRIP (the detector" not in claims
