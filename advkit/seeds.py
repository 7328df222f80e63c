"""One seed for every source of randomness (Python, NumPy, torch): same seed, same numbers."""


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
