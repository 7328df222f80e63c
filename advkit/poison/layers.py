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

`cls` is the default: the authors' reading, and the one that poisons every layer here; the runs that
chose it are in results/lwp/NOTES.md.

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
