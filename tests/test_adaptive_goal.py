"""The adaptive attack on KNN-BERT (`evaluate --attack X --goal adaptive`): the search reads a smooth score
of the KNN decision, success is still the shipped uniform vote's."""

import json

import numpy as np
import pytest
import torch
from conftest import advkit, read_json

from advkit.knn_bert.datastore import Datastore


def hand_built_store():
    """Two classes in the plane: 10 keys of class 0 around 0 degrees, 10 of class 1 around 90 degrees."""
    angles = torch.cat([torch.linspace(-0.3, 0.3, 10), torch.linspace(np.pi / 2 - 0.3, np.pi / 2 + 0.3, 10)])
    keys = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return Datastore(keys, torch.tensor([0] * 10 + [1] * 10), 2)


def at(degrees: float) -> torch.Tensor:
    r = np.radians(degrees)
    return torch.tensor([[np.cos(r), np.sin(r)]], dtype=torch.float32)


def test_a_move_toward_another_class_raises_the_smooth_score_while_the_vote_stays_put():
    store = hand_built_store()
    before, after = at(0), at(20)  # 20 degrees toward class 1: every one of the 10 nearest keys is still class 0
    assert store.search(after, 10)[1].lt(10).all()
    assert torch.equal(store.predict(before, 10), store.predict(after, 10))  # the vote: 1.0 for class 0 both times
    assert store.predict(after, 10)[0, 0] == 1.0
    near_before, near_after = store.class_proximity(before, 10, 0.07), store.class_proximity(after, 10, 0.07)
    assert near_after[0, 1] > 10 * near_before[0, 1]  # the adaptive attacker sees the step
    assert near_after[0, 0] > 0.5  # and the smooth score still agrees with the vote here
    assert torch.allclose(near_after.sum(1), torch.ones(1))
    # past the midpoint both flip
    assert store.predict(at(80), 10)[0, 1] == 1.0 and store.class_proximity(at(80), 10, 0.07)[0, 1] > 0.5


class FixedKnn:
    """What the adaptive goal reads of a KNN predictor: the shipped prediction and its smooth twin."""

    num_labels = 2

    def __init__(self, shipped, smooth):
        self.shipped, self.smooth = np.array(shipped, dtype="float32"), np.array(smooth, dtype="float32")

    def adaptive_proba(self, texts, texts_b=None):
        return np.repeat(self.shipped[None], len(texts), 0), np.repeat(self.smooth[None], len(texts), 0)


def test_the_goal_scores_by_the_smooth_twin_and_succeeds_by_the_shipped_vote():
    from advkit.attacks.recipes import _textattack, adaptive_goal

    _textattack()  # with the project's NLTK data
    from textattack.goal_function_results import GoalFunctionResultStatus
    from textattack.shared import AttackedText

    text = AttackedText("a fine film")
    # the vote still says 0 (label), the smooth score has moved toward 1
    goal = adaptive_goal(FixedKnn([1.0, 0.0], [0.6, 0.4]), batch_size=8, query_budget=100)
    result, _ = goal.init_attack_example(text, 0)
    assert result.output == 0 and result.score == pytest.approx(0.4)  # 1 - p_smooth(label)
    assert result.goal_status == GoalFunctionResultStatus.SEARCHING  # the shipped vote has not changed its mind
    flipped = adaptive_goal(FixedKnn([0.4, 0.6], [0.9, 0.1]), batch_size=8, query_budget=100)
    result, _ = flipped.init_attack_example(text, 0)
    # the goal is already met (so the example is skipped), whatever the smooth score says
    assert result.output == 1 and result.goal_status == GoalFunctionResultStatus.SKIPPED


@pytest.fixture(scope="module")
def knn_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive")
    runs = {}
    for lam in ("0", "1"):
        out = root / f"knn-{lam}"
        r = advkit("finetune", "--method", "knn", "--model", "tiny-random-en", "--dataset", "sst2", "--train-limit",
                   "48", "--limit", "16", "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--top-k", "10",
                   "--queue-size", "64", "--pooling", "mean", "--lambda-inf", lam, "--seed", "3", "--quiet",
                   "--out", out)
        assert r.code == 0, r.stderr
        runs[lam] = out
    return root, runs


def _attack(run, out, goal):
    r = advkit("evaluate", "--model", run, "--dataset", "sst2", "--split", "dev", "--limit", "6", "--attack",
               "deepwordbug", "--goal", goal, "--quiet", "--out", out)
    assert r.code == 0, r.stderr
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.shared_data("sst2")
def test_at_lambda_inf_0_the_adaptive_goal_gives_the_plain_records(knn_runs):
    root, runs = knn_runs
    plain, adaptive = _attack(runs["0"], root / "plain", "plain"), _attack(runs["0"], root / "adaptive", "adaptive")
    assert any(r["status"] != "skipped" and r["queries"] > 0 for r in plain)  # something was really attacked
    assert adaptive == plain
    assert read_json(root / "adaptive" / "metrics.json")["config"]["goal"] == "adaptive"


@pytest.mark.shared_data("sst2")
def test_every_adaptive_success_flips_the_shipped_prediction(knn_runs):
    from advkit.predictor import load_predictor

    root, runs = knn_runs
    records = _attack(runs["1"], root / "adaptive-1", "adaptive")
    predictor = load_predictor(str(runs["1"]))  # as evaluate loads it
    for r in records:
        before = int(predictor.predict_proba([r["original"]]).argmax())
        assert before == r["original_prediction"]
        if r["status"] == "success":
            assert int(predictor.predict_proba([r["adversarial"]]).argmax()) != r["label"]


def test_the_adaptive_goal_is_refused_where_it_cannot_apply(tmp_path):
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--limit", "2", "--attack", "pwws",
               "--goal", "adaptive", "--out", tmp_path / "a")
    assert r.code == 2 and r.stderr.startswith("error: --goal adaptive attacks a knn run's vote")
    r = advkit("evaluate", "--model", "tiny-random-en", "--dataset", "sst2", "--goal", "adaptive",
               "--out", tmp_path / "b")
    assert r.code == 2 and r.stderr.startswith("error: --goal adaptive belongs to an English attack")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
