"""English word-level attacks through TextAttack (`recipes`: the four parts of each, built offline).

This file holds only the light names that config reads without importing the method.
"""

ATTACKS = ("pwws", "deepwordbug", "textfooler", "bert-attack", "bae")
NEEDS_LM = ("bert-attack", "bae")  # these propose words with a local masked LM (--attack-lm)
GOALS = ("plain", "adaptive")  # what the search reads: the predictor's probabilities, or a smooth KNN score
