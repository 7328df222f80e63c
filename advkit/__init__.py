"""advkit: adversarial robustness experiments on pre-trained text classifiers.

Every command is also a Python function (advkit.api): run_finetune, run_evaluate, run_poison,
run_attack_zh, run_attack and build_piece_lm, each returning (metrics, run directory). Importing
advkit loads none of torch, transformers or textattack: a function imports its command's code when
it is first called (PEP 562's module __getattr__), so `import advkit` and `advkit --help` stay instant.
"""

__version__ = "0.1.0"

API = ("run_finetune", "run_evaluate", "run_poison", "run_attack_zh", "run_attack", "build_piece_lm")
__all__ = [*API, "UserError", "__version__"]


def __getattr__(name: str):
    if name in API:
        from advkit import api

        return getattr(api, name)
    if name == "UserError":  # what the functions raise for a user's mistake
        from advkit.errors import UserError

        return UserError
    raise AttributeError(f"module 'advkit' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
