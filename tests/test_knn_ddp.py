"""KNN-BERT under DDP: two CPU processes (gloo) fill one queue with both processes' keys and their
example ids (all-gathered), and the momentum update leaves the two key encoders identical
(DataParallel lost it in the reference)."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _tiny_net():
    from transformers import BertConfig, BertForSequenceClassification

    from advkit.knn_bert.encoder import FinetuneModel

    torch.manual_seed(0)  # the same weights in both processes, as after loading a checkpoint
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    return FinetuneModel(BertForSequenceClassification(config), "mean", momentum_contrast=True, projection_dim=8,
                   queue_size=16, momentum=0.5)


def _worker(rank: int, world: int, init_file: str, results):
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from advkit.knn_bert.losses import SupervisedMomentumContrastiveLoss

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = _tiny_net().train()
        ddp = DistributedDataParallel(net)
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
        g = torch.Generator().manual_seed(100 + rank)  # each process sees other examples
        loss_fn = SupervisedMomentumContrastiveLoss(tau=0.1, top_k=2, end_k=1)
        for step in range(2):
            enc = {"input_ids": torch.randint(1, 50, (3 + rank, 6), generator=g),  # unequal batch sizes
                   "attention_mask": torch.ones(3 + rank, 6, dtype=torch.long)}
            labels = torch.full((3 + rank,), rank)
            ids = 100 * rank + 10 * step + torch.arange(3 + rank)  # example ids, distinct across processes
            logits, rep, q = ddp(enc)
            net.momentum_update()
            keys = net.keys(enc)
            con = loss_fn(q, labels, net.queue, net.queue_labels, ids=ids, queue_ids=net.queue_ids)
            loss = 0.5 * con + 0.5 * F.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            net.enqueue(keys, labels, ids)
            if step == 0:
                first_keys = keys.clone()
        flat_k = torch.cat([p.detach().flatten() for p in net.momentum_encoder.parameters()])
        flat_q = torch.cat([p.detach().flatten() for p in net.classifier.base_model.parameters()])
        results[rank] = {"queue": net.queue.clone(), "queue_labels": net.queue_labels.clone(),
                         "queue_ids": net.queue_ids.clone(),
                         "ptr": int(net.queue_ptr), "first_keys": first_keys, "momentum": flat_k, "query": flat_q}
    finally:
        dist.destroy_process_group()


def test_two_processes_share_one_queue(tmp_path):
    results = mp.Manager().dict()
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True, start_method="spawn")
    r0, r1 = results[0], results[1]
    # Step 1 wrote rank 0's 3 keys then rank 1's 4 keys; step 2 the same again: 14 keys.
    assert r0["ptr"] == r1["ptr"] == 14
    assert r0["queue_labels"].tolist() == [0, 0, 0, 1, 1, 1, 1] * 2 + [-1, -1]
    assert torch.equal(r0["queue"], r1["queue"]) and torch.equal(r0["queue_labels"], r1["queue_labels"])
    # The ids travel with their keys: rank 0's then rank 1's, step by step, the same in both processes.
    assert r0["queue_ids"].tolist() == [0, 1, 2, 100, 101, 102, 103, 10, 11, 12, 110, 111, 112, 113, -1, -1]
    assert torch.equal(r0["queue_ids"], r1["queue_ids"])
    assert torch.allclose(r0["queue"][:3], r0["first_keys"]) and torch.allclose(r0["queue"][3:7], r1["first_keys"])
    # DDP keeps the query encoders equal, so the EMA keeps the key encoders equal too.
    assert torch.equal(r0["query"], r1["query"])
    assert torch.equal(r0["momentum"], r1["momentum"])
    assert not torch.equal(r0["momentum"], r0["query"])
