"""CUDA + bf16 check and fine-tuning throughput, in one self-contained script.

Uses only torch and transformers APIs shared by transformers 4.57 and 5.x, so it runs on a
GPU machine whose stack differs from ours. On a machine without CUDA it says so and exits 0.

1. Correctness: a tiny random BERT classifier gives the same logits on CUDA (fp32) as on
   the CPU, close logits under bf16 autocast, and one training step moves the weights the
   same way on both devices.
2. Throughput: training steps of a BERT-base-sized random model (12 layers, hidden 768) at
   sequence length 128, batch 32, bf16 autocast: examples per second and model FLOPs
   utilisation (6 * params * tokens + attention, over the card's dense bf16 peak).

Usage: python bench/gpu_check.py [--out bench/gpu_check.json]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def tiny_model():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg)


def correctness() -> dict:
    torch.manual_seed(1)
    ids = torch.randint(5, 1000, (8, 24))
    mask = torch.ones_like(ids)
    mask[:, 20:] = 0
    labels = torch.randint(0, 3, (8,))
    cpu, gpu = tiny_model(), tiny_model().cuda()
    with torch.no_grad():
        ref = cpu(input_ids=ids, attention_mask=mask).logits
        fp32 = gpu(input_ids=ids.cuda(), attention_mask=mask.cuda()).logits.cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu(input_ids=ids.cuda(), attention_mask=mask.cuda()).logits.float().cpu()
    steps = {}
    for name, model, dev in (("cpu", cpu, "cpu"), ("cuda", gpu, "cuda")):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss
        loss.backward()
        opt.step()
        steps[name] = model.classifier.weight.detach().cpu()
    result = {
        "fp32_max_abs_diff": (fp32 - ref).abs().max().item(),
        "bf16_max_abs_diff": (bf16 - ref).abs().max().item(),
        "bf16_same_argmax": bool((bf16.argmax(-1) == ref.argmax(-1)).all()),
        "train_step_max_abs_diff": (steps["cuda"] - steps["cpu"]).abs().max().item(),
    }
    result["ok"] = (result["fp32_max_abs_diff"] < 1e-4 and result["bf16_max_abs_diff"] < 5e-2
                    and result["train_step_max_abs_diff"] < 1e-4)
    return result


def throughput(steps: int = 30, warmup: int = 5, batch: int = 32, seq: int = 128) -> dict:
    torch.manual_seed(0)
    cfg = BertConfig(num_labels=2)  # BERT-base: 12 layers, hidden 768, 110M parameters
    model = BertForSequenceClassification(cfg).cuda().train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(5, cfg.vocab_size, (batch, seq), device="cuda")
    labels = torch.randint(0, 2, (batch,), device="cuda")
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = batch * seq * steps
    # Training FLOPs: 6 per parameter per token, plus attention scores and values
    # (forward 2 * 2 * seq * hidden per token per layer, times 3 for backward).
    flops = 6 * params * tokens + 12 * cfg.num_hidden_layers * seq * cfg.hidden_size * tokens
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    achieved = flops / seconds
    return {"device": name, "parameters": params, "batch": batch, "seq_len": seq, "steps": steps,
            "examples_per_second": round(batch * steps / seconds, 1), "achieved_tflops": round(achieved / 1e12, 1),
            "peak_bf16_tflops": peak / 1e12 if peak else None, "mfu": round(achieved / peak, 3) if peak else None}


def provenance() -> dict:
    """What wrote the file and where: this script, the commit, the machine and the stack (by code, never typed)."""
    import transformers

    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        commit = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"script": Path(__file__).resolve().relative_to(repo).as_posix(), "git_commit": commit,
            "machine": {"gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
                        "cores": os.cpu_count(), "host": platform.node()},
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "cuda": torch.version.cuda, "transformers": transformers.__version__}}


def main() -> None:
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "note": "no CUDA device: nothing to check"}))
        return
    result = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "correctness": correctness(),
              "throughput": throughput(), **provenance()}
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    sys.exit(0 if result["correctness"]["ok"] else 1)


if __name__ == "__main__":
    main()
