"""KNN-BERT in one place (Li et al., *KNN-BERT: Fine-Tuning Pre-Trained Models with KNN Classifier*,
arXiv 2110.02523, 2021).

Training: `encoder` (the classifier with the momentum encoder, projection heads and labelled queue
that the contrastive methods need) and `losses` (the supervised momentum contrastive loss, SCL, MoCo).
Inference: `datastore` (the training set's keys) and `predictor` (the KNN vote interpolated with the
linear head, and the smooth twin of the vote that the adaptive attack reads). advkit.finetune.train
runs the training loop of every fine-tuning method; this package holds what KNN-BERT is made of.
"""
