"""Victim queries on the CPU: fp32 eager (today's path) against bf16 autocast and ONNX Runtime (fp32 graph),
side by side on the same texts (issue 15). Per model: seconds per 1,000 queries and argmax agreement
with fp32 eager on N real examples.

    .venv/bin/python bench/query_precision.py [N]

Each registered model is fine-tuned once (advkit finetune, 2,000 examples, 1 epoch, seed 1, into
runs/bench/victims/, git-ignored) so that the agreement is measured on a trained head, as attacks see it.
Batch 32, texts truncated at 64 tokens (the zh table's victims' length), torch threads as set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, record

MODELS = {"minilm-l6": "sst2", "albert-tiny-zh": "chnsenticorp", "m3e-small": "chnsenticorp"}
BATCH, LENGTH = 32, 64


def victim_folder(alias: str, dataset: str) -> Path:
    out = REPO / "runs" / "bench" / "victims" / f"{alias}-{dataset}"
    if not (out / "model" / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "advkit.cli", "finetune", "--model", alias, "--dataset", dataset,
                        "--train-limit", "2000", "--limit", "500", "--epochs", "1", "--max-length", str(LENGTH),
                        "--seed", "1", "--out", str(out), "--overwrite", "--quiet"], cwd=REPO, check=True)
    return out / "model"


def batches(texts):
    return [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]


def run_torch(model, tokenizer, texts, bf16: bool):
    import torch

    from advkit import hf

    out = []
    started = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for part in batches(texts):
            out.append(model(**hf.encode(tokenizer, part, None, LENGTH)).logits.float())
    return torch.cat(out), time.perf_counter() - started


def run_onnx(model, tokenizer, texts):
    import numpy as np
    import onnxruntime as ort
    import torch

    from advkit import hf

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = hf.encode(tokenizer, texts[:2], None, LENGTH)
    names = [n for n in names if n in sample]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        axes = {n: {0: "batch", 1: "length"} for n in names}
        torch.onnx.export(model, tuple(sample[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}}, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out = []
        started = time.perf_counter()
        for part in batches(texts):
            enc = hf.encode(tokenizer, part, None, LENGTH)
            out.append(session.run(["logits"], {n: enc[n].numpy() for n in names})[0])
        seconds = time.perf_counter() - started
    return torch.from_numpy(np.concatenate(out)), seconds


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from advkit import data, models

    rows = {}
    for alias, dataset in MODELS.items():
        folder = victim_folder(alias, dataset)
        # held-out texts (dev, then test: the victims never trained on them), at least n of them
        texts = [e.text for split in ("dev", "test") for e in data.load(dataset, split).examples][:n]
        model, tokenizer, _ = models.load_classifier(str(folder))
        model.eval()
        run_torch(model, tokenizer, texts[:BATCH * 2], bf16=False)  # warm-up
        fp32, t_fp32 = run_torch(model, tokenizer, texts, bf16=False)
        bf16, t_bf16 = run_torch(model, tokenizer, texts, bf16=True)
        onnx, t_onnx = run_onnx(model, tokenizer, texts)
        ref = fp32.argmax(1)
        rows[alias] = {
            "dataset": dataset, "examples": len(texts),
            "seconds_per_1000": {"fp32": round(1000 * t_fp32 / len(texts), 3), "bf16": round(1000 * t_bf16 / len(texts), 3),
                                 "onnx": round(1000 * t_onnx / len(texts), 3)},
            "agreement_with_fp32": {"bf16": round(float((bf16.argmax(1) == ref).float().mean()), 4),
                                    "onnx": round(float((onnx.argmax(1) == ref).float().mean()), 4)},
            "max_abs_logit_diff": {"bf16": round(float((bf16 - fp32).abs().max()), 4),
                                   "onnx": round(float((onnx - fp32).abs().max()), 6)},
        }
    speed = {k: round(sum(r["seconds_per_1000"]["fp32"] for r in rows.values())
                      / sum(r["seconds_per_1000"][k] for r in rows.values()), 2) for k in ("bf16", "onnx")}
    best = max(speed, key=speed.get)
    agree = min(r["agreement_with_fp32"][best] for r in rows.values())
    # on a CPU without native bf16 both paths can be slower than fp32 eager: then nothing is adopted
    verdict = ("fp32 eager is fastest here: keep it" if speed[best] <= 1 else
               f"{best} agreement min {agree:.2%} ({'adoptable' if agree >= 0.995 else 'not adoptable'})")
    record("query_precision", {
        "benchmark": f"victim forward passes on {n} real examples per model (batch {BATCH}, {LENGTH} tokens): "
                     "bf16 autocast and ONNX Runtime vs fp32 eager",
        "advkit": f"{best}: {speed[best]}x fp32 (bf16 {speed['bf16']}x, onnx {speed['onnx']}x)",
        "baseline": "fp32 eager", "ratio": speed[best], "per_model": rows,
        "goal": "adopt a path faster than fp32 eager where argmax agreement >= 99.5 %",
        "outcome": verdict,
    })


if __name__ == "__main__":
    main()
