"""advkit: adversarial robustness experiments on pre-trained text classifiers."""

__version__ = "0.1.0"
