"""Chinese attacks sharded across torchrun's processes (issue 33): `advkit attack-zh` and
`advkit evaluate --attack zh-chars` on two processes write the records of one process, and a run
whose rank 1 dies mid-shard finishes with --resume, again with the records of one process.

The kill is deterministic ("seeded timing"): the ranks run through a small launcher that wraps
`Shards.append` so that rank 1, right after its K-th record is on disk (K drawn with a fixed seed),
leaves half a line behind it, as a kill in the middle of a write would, and SIGKILLs itself. torchrun
then stops rank 0 wherever it is.

The victim is tiny-random-zh with a fresh two-way head initialised wide (so that its predictions
depend on the text), the attacked examples news titles labelled with its own predictions (every
example is attacked, none skipped), the substitutes those of the tiny random masked LM. A data root
of small copies of the Chinese training splits keeps the fluency judge's trigram LM (built from
those splits by every process that scores a success) cheap.
"""

import json
import os
import random
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA, read_json

pytestmark = [pytest.mark.shared_data(name) for name in ("thucnews", "chnsenticorp", "tnews", "lcqmc")]

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
N = 8  # examples: 4 per rank
KILL_SEED = 33

# rank R of the run SIGKILLs itself right after its K-th record (with a torn line after it)
LAUNCHER = """
import os, signal, sys
from advkit import results

if os.environ.get("RANK") == os.environ["KILL_RANK"]:
    append, written = results.Shards.append, []

    def dying_append(self, record):
        append(self, record)
        written.append(record["index"])
        if len(written) == int(os.environ["KILL_AFTER"]):
            with open(self.out.path / self.own, "a", encoding="utf-8") as f:
                f.write('{"index": %d, "status": "succ' % (record["index"] + self.world))
            os.kill(os.getpid(), signal.SIGKILL)

    results.Shards.append = dying_append
from advkit.cli import main

sys.argv[0] = "advkit"
main()
"""


def titles(start: int, n: int) -> list[str]:
    lines = (SHARED_DATA / "thucnews" / "train.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[start : start + n]]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """The registered Chinese training splits, 150 lines each (the fluency judge's corpus)."""
    root = tmp_path_factory.mktemp("root")
    for path in ("chnsenticorp/train.tsv", "thucnews/train.txt", "tnews/train.tsv", "lcqmc/train.txt"):
        lines = (SHARED_DATA / path).read_text(encoding="utf-8").splitlines()[:150]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def victim_and_data(tmp_path_factory, tiny_zh, one_thread):
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_zh, num_labels=2)
    config.initializer_range = 0.3  # tiny-random's 0.02 gives the same output for every text
    config.architectures = None
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_zh)
    with torch.no_grad():
        model.classifier.bias -= model(**tokenizer(titles(1000, 200), padding=True,
                                                   return_tensors="pt")).logits.mean(0)
        texts = titles(3000, N)
        labels = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    assert 0 < sum(labels) < N  # both labels among the attacked examples
    victim = tmp_path_factory.mktemp("victim")
    model.save_pretrained(victim)
    tokenizer.save_pretrained(victim)
    dataset = tmp_path_factory.mktemp("data")
    (dataset / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)),
                                     encoding="utf-8")
    return victim, dataset


def command(name: str, victim, dataset, root, tiny_zh) -> list:
    """The same attack either way: the characters of tiny-random-zh's masked LM, attack-zh's defaults."""
    common = ["--model", victim, "--dataset", dataset, "--data-root", root, "--limit", N, "--quiet"]
    if name == "attack-zh":
        return ["attack-zh", *common, "--split", "dev", "--substitutes", "chars", "--lm", tiny_zh]
    return ["evaluate", *common, "--split", "dev", "--attack", "zh-chars", "--attack-lm", tiny_zh]


def torchrun(*args, launcher=None, kill_after: int | None = None) -> subprocess.CompletedProcess:
    """Two processes of `advkit ARGS`; with `kill_after`, through LAUNCHER (in file `launcher`), rank 1 dying
    after that many records. PYTHONPATH: a script's own folder, not the repository, heads sys.path."""
    env = {**os.environ, **ONE_THREAD}
    target = ["-m", "advkit.cli"]
    if kill_after is not None:
        launcher.write_text(LAUNCHER, encoding="utf-8")
        target = [str(launcher)]
        env.update(KILL_RANK="1", KILL_AFTER=str(kill_after), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *target,
                           *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def records(path) -> list[dict]:
    """records.jsonl without the wall-clock seconds each example took."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for r in rows:
        r.pop("seconds", None)
    return rows


def whole_lines(path) -> list[dict]:
    """The records of a shard file that a kill left whole (none if the file was never made)."""
    rows = []
    for line in (path.read_text(encoding="utf-8").splitlines() if path.is_file() else []):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def numbers(run) -> dict:
    return {k: v for k, v in read_json(run / "metrics.json")["metrics"].items() if "seconds" not in k}


def test_two_processes_and_a_killed_rank_resumed_write_the_records_of_one(tmp_path, victim_and_data, small_root,
                                                                           tiny_zh, monkeypatch):
    """One process (attack-zh, run in this process through the CLI's app), then on two processes:
    attack-zh whole, and `evaluate --attack zh-chars` killed in rank 1 and resumed. evaluate's Chinese
    attacks are attack-zh's search, so all three write the same records."""
    from advkit import progress, results
    from advkit.cli import app

    # the in-process run's globals (--quiet, the data notes) do not outlive this test
    monkeypatch.setattr(progress, "QUIET", progress.QUIET)
    monkeypatch.setattr(results, "DATA_NOTES", {})
    victim, dataset = victim_and_data
    one, two, cut = tmp_path / "one", tmp_path / "two", tmp_path / "cut"
    app([*map(str, command("attack-zh", victim, dataset, small_root, tiny_zh)), "--out", str(one)],
        standalone_mode=False)
    expected = records(one / "records.jsonl")
    assert [e["index"] for e in expected] == list(range(N))
    won = [e for e in expected if e["status"] == "success"]
    assert all(e["status"] != "skipped" for e in expected)  # every example attacked
    assert {e["index"] % 2 for e in won} == {0, 1}  # both ranks find adversarial examples (and score them)

    proc = torchrun(*command("attack-zh", victim, dataset, small_root, tiny_zh), "--out", two)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert records(two / "records.jsonl") == expected
    assert not list(two.glob("records.rank-*.jsonl"))  # the shards were merged and removed
    assert numbers(two) == numbers(one) and numbers(one)["examples"] == N

    args = command("evaluate", victim, dataset, small_root, tiny_zh)
    kill_after = random.Random(KILL_SEED).randint(1, N // 2 - 1)  # of rank 1's N / 2 examples
    proc = torchrun(*args, "--out", cut, launcher=tmp_path / "launch.py", kill_after=kill_after)
    assert proc.returncode != 0 and not (cut / "metrics.json").exists()
    shard = (cut / "records.rank-1.jsonl").read_text(encoding="utf-8")
    assert [w["index"] for w in whole_lines(cut / "records.rank-1.jsonl")] == list(range(1, 2 * kill_after, 2))
    assert not shard.endswith("\n")  # the torn line the kill left
    assert not (cut / "records.jsonl").exists()  # nothing was merged
    # what both ranks had finished (rank 0, stopped by torchrun wherever it was, may have any number)
    finished = {w["index"]: w["seconds"] for name in ("records.rank-0.jsonl", "records.rank-1.jsonl")
                for w in whole_lines(cut / name)}

    proc = torchrun(*args, "--out", cut, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert records(cut / "records.jsonl") == expected
    assert not list(cut.glob("records.rank-*.jsonl"))
    # the examples finished before the kill were kept, not attacked again (their timings are the first run's)
    merged = [json.loads(line) for line in (cut / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["index"]: r["seconds"] for r in merged if r["index"] in finished} == finished
    m = numbers(cut)
    assert read_json(cut / "metrics.json")["command"] == "evaluate" and m.pop("attack") == "zh-chars"
    assert m == numbers(one)
