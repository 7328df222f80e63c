"""KNN-BERT inference over linear-head inference on the same model and split (issue 7: at most 1.25).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/knn_inference.py [--run KNN_RUN_DIR]

Without --run, trains a knn run first (minilm-l6, sst2, 2000 training examples: a datastore of
2000 keys, 1 epoch). Then times, interleaved, the linear head alone (`Victim` on the run's
classifier) and the combined KNN + linear predictor (`KnnPredictor`: the same forward pass plus
the projection, a cosine top-k over the datastore and the vote) on the whole SST-2 dev split at
the same batch size; each reports its fastest repeat. Writes bench/out/knn_inference.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import record
from advkit.victim import Victim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finetune --method knn run directory (else one is trained)")
    ap.add_argument("--train-limit", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import advkit.progress
    from advkit import data
    from advkit.finetune.config import FinetuneConfig
    from advkit.knn_bert.predictor import KnnPredictor
    from advkit.finetune.train import train_and_evaluate
    from advkit.results import RunDir

    advkit.progress.QUIET = True
    tmp = tempfile.TemporaryDirectory()
    run = args.run
    if run is None:
        run = Path(tmp.name) / "knn"
        train_and_evaluate(FinetuneConfig(method="knn", train_limit=args.train_limit, limit=64, epochs=1,
                                          pooling="mean"), RunDir(run, "finetune"))
    texts = [e.text for e in data.load("sst2", "dev").examples]
    knn = KnnPredictor.load(str(run), batch_size=args.batch_size)
    head = Victim.load(str(run), batch_size=args.batch_size)
    seconds = {"linear_head": [], "knn_combined": []}
    for _ in range(args.repeats):
        for name, predictor in (("linear_head", head), ("knn_combined", knn)):
            start = time.perf_counter()
            predictor.predict_proba(texts)
            seconds[name].append(round(time.perf_counter() - start, 3))
    best = {k: min(v) for k, v in seconds.items()}
    record("knn_inference", {
        "benchmark": f"KNN-BERT combined predictor vs its linear head alone: inference on all {len(texts)} SST-2 dev "
                     f"examples, datastore of {len(knn.datastore)} keys, k {knn.knn_k}, batch {args.batch_size}, "
                     f"fastest of {args.repeats} interleaved repeats",
        "examples": len(texts), "datastore_size": len(knn.datastore), "knn_k": knn.knn_k,
        "batch_size": args.batch_size, "seconds": seconds, "advkit": f"{best['knn_combined']:.2f} s",
        "baseline": f"{best['linear_head']:.2f} s", "ratio": round(best["knn_combined"] / best["linear_head"], 3),
        "goal": "at most 1.25"})
    tmp.cleanup()


if __name__ == "__main__":
    main()
