"""Multi-process training under torchrun (torch.distributed): one process per device or CPU slot.

`torchrun --nproc-per-node 2 -m advkit.cli finetune ...` sets RANK / WORLD_SIZE / MASTER_ADDR;
each process trains on its own share of every epoch's batches, gradients are averaged across
processes after each backward pass (what DDP does, without its bucketing), and KNN-BERT's
keys are all-gathered before they enter the queue (`knn.gather`). Identical initial weights
(same seed) plus identical averaged steps keep every replica, and so every momentum encoder,
the same. Only rank 0 writes files.
"""

from __future__ import annotations

import datetime
import os


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> tuple[int, int]:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    rank, size = world()
    if size > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():  # long timeout: the other ranks wait while rank 0 evaluates and saves
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                                    timeout=datetime.timedelta(hours=4))
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return rank, size


def average_gradients(params) -> None:
    import torch.distributed as dist

    size = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(size)


def agree(flag: bool) -> bool:
    """Rank 0's `flag` on every process (alone: the flag itself)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return flag
    import torch

    t = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


def gather_dict(part: dict) -> dict:
    """Every process's `part` merged, on every process (alone: `part` itself)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return part
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, part)
    return {k: v for p in parts for k, v in p.items()}


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def sharded_records(out, n: int, one, label: str, rank: int = 0, world: int = 1,
                name: str = "records.jsonl") -> list[dict] | None:
    """Examples 0..n-1, each on its rank (i % world): `one(i)` returns example i's record, appended to
    the rank's file as soon as it is done, so a killed run keeps it; with `out.resume` the records
    already there are skipped. After every rank has finished, rank 0 gets every record sorted by
    index (the records.jsonl one process writes), the other ranks None. Without `out`, the records
    are kept in memory only. Rank 0 has created `out` before."""
    from advkit.progress import track
    from advkit.results import Shards

    shards = Shards(out, rank, world, name) if out is not None else None
    if shards is not None and out.resume and rank == 0:
        shards.repair()
    barrier()  # rank 0 has made (or repaired) the folder
    done = {r["index"] for r in shards.done()} if shards is not None and out.resume else set()
    records = []
    for i in track([i for i in (shards.mine(n) if shards else range(n)) if i not in done], label):
        record = one(i)
        if shards is not None:
            shards.append(record)  # flushed and synced: a finished example survives an interruption
        else:
            records.append(record)
    barrier()  # every shard is written
    if rank > 0:
        return None
    return shards.merge() if shards is not None else records


def main(command: str, out, overwrite: bool, resume: bool, run) -> dict | None:
    """Run `run(run_dir)` as this process's part of a command: alone, or as one rank under torchrun.
    The other ranks must not refuse rank 0's folder (nor ever create or clear it); only rank 0's
    result (metrics.json's document) is returned."""
    from advkit.results import RunDir

    rank = world()[0]
    # rank 0 holds the lock; the other ranks join its folder
    run_dir = RunDir(out, command, overwrite=overwrite or rank > 0, resume=resume, lock=rank == 0)
    run_dir.check_writable()
    try:
        doc = run(run_dir)
    finally:
        run_dir.release()
        teardown()
    return doc if rank == 0 else None


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
