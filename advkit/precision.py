"""Which precision a run computes in: `--precision auto` resolves to bf16 only where the hardware
computes bf16 natively.

On a CPU without native bf16 (AVX2, or AVX512 without its BF16 extension) torch emulates bf16 by
converting to and from fp32 around every op: queries ran 2-3x slower than fp32 on an AVX2-only
EPYC (issue 33), while an AVX512-BF16 Xeon ran them 1.76x faster (bench/results.md). So the
default may not be a constant: it is read off the machine, and the resolved value is what a
run's config records.
"""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_features() -> dict:
    """torch's CPU capability string and the two instruction sets that make bf16 native."""
    import torch

    probe = getattr(torch, "cpu", None)

    def has(name: str) -> bool:
        check = getattr(probe, name, None)
        return bool(check()) if check is not None else False

    return {"capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": has("_is_avx512_bf16_supported"), "amx": has("_is_amx_tile_supported")}


def native_bf16(device: str, features: dict | None = None) -> bool:
    """CUDA with bf16 support, or a CPU with AVX512-BF16 or AMX (as torch reports them)."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    f = features if features is not None else cpu_features()
    capability = str(f.get("capability", "")).upper()
    return bool(f.get("avx512_bf16") or f.get("amx") or "BF16" in capability or "AMX" in capability)


def resolve(precision: str, device: str, features: dict | None = None) -> str:
    """"fp32" or "bf16": an explicit choice as given, "auto" by `native_bf16`."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device, features) else "fp32"


def autocast(device, precision: str):
    """The training and query context: bf16 autocast when `precision` (resolved) is bf16, else none."""
    import torch

    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
