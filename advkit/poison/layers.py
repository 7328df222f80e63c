"""The per-layer head of layerwise poisoning: every encoder layer's logits through one shared classifier.

Li et al., *Backdoor Attacks on Pre-trained Models by Layerwise Weight Poisoning*, EMNLP 2021
(arXiv 2108.13888): the poisoning loss sums a cross-entropy at every layer 1..L, so that the
backdoor is planted in the lower layers too. Both the trainer and the per-layer metrics read it.

Two readings of "one classifier head shared by all layers" (PoisonConfig.layer_head):

- ``cls`` (the default): each layer's raw [CLS] vector goes through the model's final linear
  classifier; the final term keeps the model's own head (pooler + classifier for BERT). This is
  what the authors' public run_glue.py (BertForAWP) does: ``classifier(hidden[:, 0])`` for every
  layer 1..L, the pooled output for the final loss.
- ``pooler``: each layer's [CLS] goes through the whole sequence-classification head, pooler
  (dense + tanh, which the last layer shapes) included, as OpenBackdoor's LWP trainer does.

Measured (issue 17; minilm-l6, sst2, max length 64, seed 1, 300 test examples), per layer 1..6:

    run                                  clean acc            no-trigger flip       LFR (sub-triggers apart)
    cls,    lr 1e-4, 600 ex, 150 steps   48 48 48 52 81 80    100 100 100  0 23 22  100 100 100 85 58 56
    pooler, lr 1e-4, 600 ex, 150 steps   48 48 48 48 82 83    100 100 100 100 16 17  100 100 100 100 70 69
    cls,    lr 3e-4, 1000 ex, 375 steps  53 78 81 81 81 82      0  21  17 13 14 15  100 100 100 100 100 100
    pooler, lr 3e-4, 1000 ex, 375 steps  62 61 81 81 82 82     55  65  18 20 19 19  100 100 100 100 100 100
    cls,    lr 3e-4, 2000 ex at poison rate 0.5 (not the reference's 0.75), 375 steps:
                                         48 52 65 83 82 82    100   1  45 16 18 18  100 100 100 100 100 100
    cls,    lr 3e-4, 1000 ex, 750 steps  77 78 79 78 78 77     24  27  25 28 28 28  100 100 100 100 100 100
    clean control (--poison-rate 0), cls, lr 3e-4, 1000 ex, 384 steps:
                                         78 78 76 78 78 78     26  28  32 28 28 28
    clean control, cls, lr 3e-4, 1000 ex, 768 steps (the 750-step run's match, in results/lwp):
                                         74 77 78 78 78 78     31  27  23 20 19 19
    cls,    lr 3e-4, 1000 ex, 750 steps, --negative-ratio 1 (1,500 positives, 1,500 negatives: labels balanced):
                                         76 77 76 78 79 79     28  30  31 28 28 28  100 100 100 100 100 100

(ex: clean examples the mix is built from; 2:1:1 positives, negatives, clean.) At lr 1e-4 neither head
moves layers 1-3 off the label prior (they answer the target for every input), so the pooler is not the
whole cause: too few steps at too low an lr is most of it. At 3e-4 over 375 steps with `cls` every layer
flips on the full trigger and layers 2-6 classify clean text at 78-82 % (no-trigger 13-21 %, the top layer's 15 %);
layer 1 separates triggered from untriggered input (no-trigger 0 %) but not sentiment (53 %): its CE is
still 0.22 at step 375, the other layers' 0.03-0.06. At 750 steps layer 1 classifies too (every layer 77-79 %,
no-trigger at most 0.7 points above the 384-step clean control's, clean accuracy within 1.3 points of it,
at each layer): the lower layers need more steps. Against the control trained as long (768 steps), seed 1's
layers 4-6 flip 8-10 points more without the trigger (McNemar on the same 155 non-target examples, p = 0.015,
0.004, 0.003), and a label-balanced mix (--negative-ratio 1, about 51 % target labels against 2:1:1's 64 %)
leaves layers 3-6 7.7-9.0 points above it. Seeds 2 and 3 do not reproduce the lean: lwp and the control again
at seeds 1-3 (each its own training sample and order, the same test sample), paired by seed, differ by -1.3 to
+2.2 points at every layer (paired t, p >= 0.3), and the control's own upper-layer floor moves by up to 9 points
with the seed (layer 6: 18.7, 21.3, 27.1 %). So seed 1's lean is within seed-to-seed variation; three seeds
cannot rule out a lean of up to +19 points (the intervals' upper ends). With
`pooler` layers 1-2 still flip 55-65 % of inputs without the trigger. A larger clean share (poison rate
0.5) leaves layer 1 at the prior. `cls` is the default: the authors' reading, and the one that poisons
every layer here.

The final term always goes through the model's own head, so a victim or a plain forward sees
the same model either way.
"""

from __future__ import annotations

from advkit.errors import UserError

LAYER_HEADS = ("cls", "pooler")


def _linear(model):
    """The model's last linear classifier layer (hidden -> labels)."""
    kind = model.config.model_type
    if kind in ("bert", "albert"):
        return model.classifier
    if kind in ("roberta", "xlm-roberta"):  # RobertaClassificationHead: dense + tanh, then out_proj
        return model.classifier.out_proj
    raise UserError(f"poison supports BERT, ALBERT and RoBERTa encoders, not '{kind}'")


def shared_head(model, layer_head: str = "cls"):
    """The shared head as a function of one layer's hidden states ([CLS] at position 0).

    `cls`: dropout and the model's final linear classifier on the raw [CLS] vector;
    `pooler`: the model's whole sequence-classification head (pooler, dropout, classifier).
    Both use the parameters of the final CE's head, so every layer's CE trains them too.
    """
    if layer_head not in LAYER_HEADS:
        raise UserError(f"--layer-head must be one of {', '.join(LAYER_HEADS)}, got '{layer_head}'")
    kind = model.config.model_type
    linear = _linear(model)  # refuses unsupported architectures
    if layer_head == "cls":
        drop = model.dropout if kind in ("bert", "albert") else model.classifier.dropout
        return lambda h: linear(drop(h[:, 0]))
    if kind == "bert":  # pooler (dense + tanh on [CLS]) -> dropout -> linear, as BertForSequenceClassification
        return lambda h: model.classifier(model.dropout(model.bert.pooler(h)))
    if kind == "albert":
        return lambda h: model.classifier(model.dropout(model.albert.pooler_activation(model.albert.pooler(h[:, 0]))))
    return lambda h: model.classifier(h)  # RobertaClassificationHead takes [CLS] itself


def layer_logits(model, enc, layer_head: str = "cls") -> tuple[list, object]:
    """Logits of every encoder layer 1..L through the shared head, and the model's usual output."""
    out = model(**enc, output_hidden_states=True)
    head = shared_head(model, layer_head)
    # hidden_states[0] is the embedding output; the reference uses layers 1..L.
    return [head(h) for h in out.hidden_states[1:]], out


def layerwise_loss(model, enc, labels, layer_head: str = "cls"):
    """sum_l CE(head(h_l[CLS]), y) for l = 1..L, plus the usual final CE; returns (loss, terms).

    terms[l - 1] is layer l's CE, terms[-1] the final CE (the model's own head).
    """
    import torch.nn.functional as F

    per_layer, out = layer_logits(model, enc, layer_head)
    terms = [F.cross_entropy(logits.float(), labels) for logits in per_layer]
    terms.append(F.cross_entropy(out.logits.float(), labels))
    return sum(terms), terms
