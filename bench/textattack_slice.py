"""The benchmark's 100 SST-2 test examples as a TextAttack dataset (for `textattack attack --dataset-from-file`).

The same fixed sample advkit's `--limit 100` draws (seed 0, file order).
"""

import os

import textattack

from advkit import data

_N = int(os.environ.get("BENCH_EXAMPLES", "100"))
_examples = data.sample(data.load("sst2", "test").examples, _N)
dataset = textattack.datasets.Dataset([(e.text, e.label) for e in _examples])
