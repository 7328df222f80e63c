"""Wall time of one training epoch of `finetune --method knn` over `--method ce` (issue 3: at most 1.4),
and with the reference's `--positives-per-query 16`, measured side by side in one process.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/knn_epoch.py --model minilm-l6 --train-limit 256

Same model, data, batch size and seed for every variant; runs are interleaved (ce, knn, ce, knn, ...)
and each variant reports its fastest epoch (train_seconds: the training loop only), so a busy
machine slows all variants alike. Writes bench/out/knn_epoch.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--dataset", default="sst2")
    ap.add_argument("--train-limit", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import advkit.progress
    from advkit.finetune.config import FinetuneConfig
    from advkit.finetune.train import train_and_evaluate
    from advkit.results import RunDir

    advkit.progress.QUIET = True
    variants = {"ce": {"method": "ce"}, "knn": {"method": "knn"},
                "knn_positives_per_query_16": {"method": "knn", "positives_per_query": 16}}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, extra in variants.items():
                if name.endswith("16") and r > 0:
                    continue  # 17 passes per example: once is enough to see the ratio
                cfg = FinetuneConfig(model=args.model, dataset=args.dataset, train_limit=args.train_limit, limit=8,
                                     epochs=1, batch_size=args.batch_size, save_model=False,
                                     checkpoint_seconds=None, **extra)  # no checkpoint writes in the timing
                m = train_and_evaluate(cfg, RunDir(Path(tmp) / f"{name}-{r}", "finetune"))["metrics"]
                times[name].append(m["train_seconds"])
    best = {name: min(t) for name, t in times.items()}
    record("knn_epoch", {
        "benchmark": f"one training epoch, finetune --method knn vs --method ce ({args.model}, {args.dataset}, "
                     f"{args.train_limit} examples, batch {args.batch_size}, interleaved, fastest of {args.repeats})",
        "epoch_seconds": times, "advkit": f"{best['knn']:.1f} s", "baseline": f"{best['ce']:.1f} s",
        "ratio": round(best["knn"] / best["ce"], 3), "goal": "at most 1.4",
        "outcome": f"--positives-per-query 16 (the reference's sampling): {best['knn_positives_per_query_16']:.1f} s, "
                   f"{best['knn_positives_per_query_16'] / best['ce']:.2f}x CE"})

if __name__ == "__main__":
    main()
