"""The optimiser every fine-tuning loop shares: AdamW without decay on biases and
LayerNorm weights, and a linear schedule with warm-up (BERT's recipe)."""

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


def adamw_linear(named_parameters, lr: float, weight_decay: float, total_steps: int, warmup_ratio: float):
    """(optimizer, schedule) over the (name, parameter) pairs that are trained."""
    import torch

    params = list(named_parameters)
    groups = [
        {"params": [p for n, p in params if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    warmup = int(warmup_ratio * total_steps)

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / max(1, warmup)
        return max(0.0, (total_steps - s) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clipped_step(parameters, optimizer, schedule, max_norm: float = 1.0) -> None:
    """One update after backward: clip the gradient norm, step the optimiser and the schedule, clear."""
    import torch

    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
