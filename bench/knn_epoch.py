"""Wall time of one training epoch of `finetune --method knn` over `--method ce` (issue 3: at most 1.4),
and with the reference's `--positives-per-query 16`, measured side by side in one process.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/knn_epoch.py --model minilm-l6 --train-limit 256

Same model, data, batch size and seed for every variant; runs are interleaved (ce, knn, ce, knn, ...)
and each variant reports its fastest epoch (train_seconds: the training loop only), so a busy
machine slows all variants alike. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--dataset", default="sst2")
    ap.add_argument("--train-limit", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import advkit.progress
    from advkit.config import FinetuneConfig
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
                                     epochs=1, batch_size=args.batch_size, save_model=False, **extra)
                m = train_and_evaluate(cfg, RunDir(Path(tmp) / f"{name}-{r}", "finetune"))["metrics"]
                times[name].append(m["train_seconds"])
    best = {name: min(t) for name, t in times.items()}
    print(json.dumps({"model": args.model, "dataset": args.dataset, "train_examples": args.train_limit,
                      "batch_size": args.batch_size, "epoch_seconds": times,
                      "ratio_knn_over_ce": round(best["knn"] / best["ce"], 3),
                      "ratio_knn_ppq16_over_ce": round(best["knn_positives_per_query_16"] / best["ce"], 3)}, indent=2))


if __name__ == "__main__":
    main()
