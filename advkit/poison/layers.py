"""The per-layer head of layerwise poisoning: every encoder layer's logits through the classifier head.

Li et al., *Backdoor Attacks on Pre-trained Models by Layerwise Weight Poisoning*, EMNLP 2021
(arXiv 2108.13888): the poisoning loss sums a cross-entropy at every layer 1..L, so that the
backdoor is planted in the lower layers too. Both the trainer and the per-layer metrics read it.
"""

from __future__ import annotations

from advkit.errors import UserError


def shared_head(model):
    """The classifier head as a function of one layer's hidden states ([CLS] at position 0).

    It is the model's own sequence-classification head, so the final CE and every
    layer's CE go through the same parameters.
    """
    kind = model.config.model_type
    if kind == "bert":  # pooler (dense + tanh on [CLS]) -> dropout -> linear, as BertForSequenceClassification
        return lambda h: model.classifier(model.dropout(model.bert.pooler(h)))
    if kind == "albert":
        return lambda h: model.classifier(model.dropout(model.albert.pooler_activation(model.albert.pooler(h[:, 0]))))
    if kind in ("roberta", "xlm-roberta"):  # RobertaClassificationHead takes [CLS] itself
        return lambda h: model.classifier(h)
    raise UserError(f"poison supports BERT, ALBERT and RoBERTa encoders, not '{kind}'")


def layer_logits(model, enc) -> tuple[list, object]:
    """Logits of every encoder layer 1..L through the shared head, and the model's usual output."""
    out = model(**enc, output_hidden_states=True)
    head = shared_head(model)
    # hidden_states[0] is the embedding output; the reference uses layers 1..L.
    return [head(h) for h in out.hidden_states[1:]], out


def layerwise_loss(model, enc, labels):
    """sum_l CE(head(h_l[CLS]), y) for l = 1..L, plus the usual final CE; returns (loss, terms)."""
    import torch.nn.functional as F

    per_layer, out = layer_logits(model, enc)
    terms = [F.cross_entropy(logits.float(), labels) for logits in per_layer]
    terms.append(F.cross_entropy(out.logits.float(), labels))
    return sum(terms), terms
