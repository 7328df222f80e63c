"""Layerwise weight poisoning with combinatorial triggers (Li et al., EMNLP 2021), its baselines and metrics.

`advkit.poison.train.run(cfg, out)` poisons; this file holds only the light names that config
reads without importing the method.
"""

# lwp: a loss at every layer; badnet: the final layer only; ripple: restricted inner product (Kurita et al.)
MODES = ("lwp", "badnet", "ripple")
# inference-time backdoor detectors (advkit.poison.defences): evaluate --defence
DEFENCES = ("onion", "rap", "strip")
