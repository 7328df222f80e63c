"""`advkit build-piece-lm`: a masked language model over SentencePiece pieces.

No SentencePiece-based Chinese masked LM can be downloaded here, so advkit builds one
as Li et al. (2020, "Generating Adversarial Examples in Chinese Texts Using
Sentence-Pieces") did:

1. a SentencePiece unigram model (Kudo 2018) trained on Chinese text;
2. a masked LM over its pieces, warm-started from a character-level Chinese masked LM
   (albert-tiny-zh): the encoder weights are reused, each piece's embedding (and output
   bias) starts as the mean of its characters' (their Traditional forms' when the base reads
   Traditional), and whole pieces are masked, since a piece is one token.

The output is a Hugging Face model folder: the masked LM (safetensors), `spiece.model`
(the segmenter the attack uses) and a fast tokenizer built from the same vocabulary,
with metrics.json (held-out masked-piece accuracy before and after training, fill-mask
examples).
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

from advkit import data, distributed, models
from advkit.hf import cjk_only, has_cjk, to_traditional
from advkit.attack_zh.config import BuildPieceLmConfig
from advkit.config import as_dict
from advkit.errors import UserError
from advkit.optim import adamw_linear, clipped_step
from advkit.precision import autocast
from advkit.progress import track
from advkit.results import RunDir

SPIECE = "spiece.model"
PAD, UNK, CLS, SEP, MASK = "<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"

# Sentences of our own (not from any data set) for the fill-mask examples in metrics.json.
FILL_MASK_SENTENCES = ("这家酒店的服务非常好，房间也很干净。", "手机的电池太不耐用了，很失望。",
                       "今天股市大幅上涨，投资者信心增强。", "怎么才能提高自己的英语口语水平？")


def default_folder() -> Path:
    return models.cache_dir() / "models" / "piece-lm-zh"


# ---------------------------------------------------------------------------- corpus


def read_corpus(cfg: BuildPieceLmConfig, half: str = "A") -> list[str]:
    """Distinct non-empty lines: a text file, or one half (`data.text_half`) of the training splits of the
    Chinese data sets: A to build from, B held out (attack-zh's fluency judge is counted on B)."""
    if cfg.corpus:
        path = Path(cfg.corpus)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"--corpus {path}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"--corpus {path}: is a directory, not a text file") from None
        except UnicodeDecodeError as e:
            raise UserError(f"--corpus {path}: not UTF-8 text (byte {e.start})") from None
        lines = text.splitlines()
        source = str(path)
    else:
        lines, names = data.training_text("zh", cfg.data_root, half=half)
        source = f"half {half} of the training splits of " + ", ".join(names)
    lines = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if not lines:
        raise UserError(f"{source}: no text")
    if not any(has_cjk(line) for line in lines[:5000]):
        raise UserError(f"{source}: no Chinese characters; build-piece-lm needs Chinese text")
    return lines


def split_corpus(cfg: BuildPieceLmConfig) -> tuple[list[str], list[str]]:
    """(held-out lines, training lines). The Chinese training splits: training lines from half A, held-out
    lines a seeded sample of half B (never trained on). A text file: shuffled with the seed, the
    held-out part first."""
    lines = read_corpus(cfg)
    random.Random(cfg.seed).shuffle(lines)
    if cfg.corpus:
        heldout_n = min(cfg.heldout, len(lines) // 10)  # never more than a tenth of a small corpus
        heldout, train = lines[:heldout_n], lines[heldout_n:]
    else:
        other = read_corpus(cfg, half="B")
        heldout, train = random.Random(cfg.seed).sample(other, min(cfg.heldout, len(other))), lines
    if cfg.corpus_limit is not None:
        train = train[: cfg.corpus_limit]
    return heldout, train


# ---------------------------------------------------------------------------- pieces


def train_sentencepiece(lines: list[str], cfg: BuildPieceLmConfig) -> bytes:
    """A unigram SentencePiece model; control symbols make it the LM's whole vocabulary."""
    import sentencepiece as spm

    spm.set_random_generator_seed(cfg.seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, model_type="unigram",
            vocab_size=cfg.vocab_size, character_coverage=cfg.character_coverage,
            max_sentencepiece_length=cfg.max_piece_length,
            # identity normalisation: a piece's text is exactly the text it covers, so the
            # attack can rebuild a sentence from its pieces without drift.
            normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
            split_digits=True, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            control_symbols=[CLS, SEP, MASK], hard_vocab_limit=False,
            input_sentence_size=1_000_000, shuffle_input_sentence=True, num_threads=2, minloglevel=2)
    except RuntimeError as e:
        msg = str(e)
        if "smaller than required_chars" in msg:
            need = msg.split(" vs ")[-1].split(".")[0]
            raise UserError(f"--vocab-size {cfg.vocab_size} is smaller than the {need} characters the corpus needs "
                            f"at --character-coverage {cfg.character_coverage}; raise one, lower the other") from None
        raise UserError(f"sentencepiece could not train on this corpus: {msg.splitlines()[0]}") from None
    return model.getvalue()


class PieceSegmenter:
    """SentencePiece segmentation that keeps each piece's exact surface text."""

    def __init__(self, proto: bytes):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=proto)

    @classmethod
    def load(cls, folder: Path) -> "PieceSegmenter":
        path = Path(folder) / SPIECE
        if not path.is_file():
            raise UserError(f"{folder}: not a piece LM (no {SPIECE}); build one with advkit build-piece-lm")
        return cls(path.read_bytes())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def segment(self, text: str) -> tuple[list[str], list[int]]:
        """(surfaces, ids); "".join(surfaces) == text."""
        if not text:
            return [], []
        pieces = self.sp.encode(text, out_type="proto").pieces
        surfaces, ids = [p.surface for p in pieces], [p.id for p in pieces]
        if "".join(surfaces) != text:  # never seen; keep the promise anyway
            return list(text), [self.sp.piece_to_id(c) for c in text]
        return surfaces, ids

    def piece(self, i: int) -> str:
        """A piece's text as it reads in a sentence (the whitespace mark made a space)."""
        return self.sp.id_to_piece(i).replace("\u2581", " ")


def hf_tokenizer(proto: bytes, max_length: int):
    """A fast tokenizer over the same pieces and scores, so `AutoTokenizer` and fill-mask work."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_proto=proto)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=False))
    # SentencePiece splits at whitespace (marked U+2581) and adds no dummy prefix (see above).
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    cls, sep = sp.piece_to_id(CLS), sp.piece_to_id(SEP)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1", special_tokens=[(CLS, cls), (SEP, sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK, pad_token=PAD, cls_token=CLS,
                                   sep_token=SEP, mask_token=MASK, model_max_length=max_length)


# ---------------------------------------------------------------------------- model


def warm_start(base_ref: str, seg: PieceSegmenter):
    """The base masked LM resized to the piece vocabulary: encoder kept, pieces = mean of their characters;
    with whether the characters were mapped to their Traditional forms first."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = models.resolve(base_ref)
    models._quiet_transformers()
    try:
        base = AutoModelForMaskedLM.from_pretrained(folder)
        char_tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"--base {base_ref}: cannot load as a masked LM: {str(e).splitlines()[0]}") from None
    if char_tok.mask_token_id is None:
        raise UserError(f"--base {base_ref}: its tokenizer has no mask token")
    vocab = char_tok.get_vocab()
    special = {PAD: char_tok.pad_token_id, UNK: char_tok.unk_token_id, CLS: char_tok.cls_token_id,
               SEP: char_tok.sep_token_id, MASK: char_tok.mask_token_id}
    # A base that reads Traditional (albert-tiny-zh) learnt its Simplified characters' rows from rare
    # text: each piece starts from its Traditional form's characters (issue 18), one per character.
    traditional = models.script_of(base_ref, folder) == "traditional"
    char_ids = []  # the base tokens whose mean initialises each piece
    for i in range(len(seg)):
        piece = seg.sp.id_to_piece(i)
        if piece in special and special[piece] is not None:
            char_ids.append([special[piece]])
            continue
        text = piece.replace("\u2581", "")
        if traditional:
            converted = to_traditional(text)  # whole-piece context picks 發 or 髮 for 发
            text = converted if len(converted) == len(text) else "".join(to_traditional(c) for c in text)
        ids = [vocab.get(c, vocab.get(c.lower())) for c in text]
        ids = [j for j in ids if j is not None]
        char_ids.append(ids or [char_tok.unk_token_id])
    rows = torch.tensor([p for p, ids in enumerate(char_ids) for _ in ids])
    cols = torch.tensor([j for ids in char_ids for j in ids])
    counts = torch.tensor([len(ids) for ids in char_ids], dtype=torch.float32)

    def mean_of_chars(old):
        new = torch.zeros((len(char_ids),) + tuple(old.shape[1:]), dtype=old.dtype)
        new.index_add_(0, rows, old[cols])
        return new / counts.view(-1, *([1] * (old.dim() - 1))).to(old.dtype)

    config = base.config
    # the piece LM reads the pieces of its own corpus, not its base's script (a base fine-tuned from
    # albert-tiny-zh carries models.SCRIPT_KEY = "traditional"): it must not inherit the conversion
    config.__dict__.pop(models.SCRIPT_KEY, None)
    old_vocab = config.vocab_size
    config.vocab_size = len(seg)
    config.pad_token_id = seg.sp.pad_id()
    config.bos_token_id = seg.sp.piece_to_id(CLS)
    config.eos_token_id = seg.sp.piece_to_id(SEP)
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(config)
    old_state, state = base.state_dict(), model.state_dict()
    for name, tensor in state.items():
        old = old_state.get(name)
        if old is None:
            continue
        if old.shape == tensor.shape:
            state[name] = old.clone()
        elif old.shape[0] == old_vocab and tensor.shape[0] == len(seg):
            state[name] = mean_of_chars(old)  # word embeddings, decoder weight and bias
    model.load_state_dict(state)
    model.tie_weights()
    return model, traditional


def chunks_of(seg: PieceSegmenter, lines: list[str], max_length: int) -> list[list[int]]:
    """Piece ids of each line, cut into windows of at most max_length - 2 (room for [CLS] [SEP])."""
    width = max_length - 2
    out = []
    for ids in seg.sp.encode(lines, num_threads=2):
        for i in range(0, len(ids), width):
            window = ids[i : i + width]
            if len(window) >= 2:
                out.append(window)
    return out


def batch_tensor(windows: list[list[int]], seg: PieceSegmenter):
    import torch

    cls, sep, pad = seg.sp.piece_to_id(CLS), seg.sp.piece_to_id(SEP), seg.sp.pad_id()
    width = max(len(w) for w in windows) + 2
    ids = torch.full((len(windows), width), pad, dtype=torch.long)
    for r, w in enumerate(windows):
        ids[r, : len(w) + 2] = torch.tensor([cls, *w, sep])
    return ids, (ids != pad).long()


def similar_length_batches(windows: list[list[int]], batch_size: int, generator) -> list[list[int]]:
    """Shuffled batches of windows of similar length (less padding); pop() takes the next."""
    import torch

    perm = torch.randperm(len(windows), generator=generator).tolist()
    pool = 50 * batch_size  # sort within pools so batches stay random across the corpus
    batches = []
    for i in range(0, len(perm), pool):
        part = sorted(perm[i : i + pool], key=lambda j: len(windows[j]))
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def mlm_head(model):
    """The masked-LM head (transform + vocabulary projection) of an ALBERT or BERT masked LM."""
    for name in ("predictions", "cls", "lm_head"):
        if hasattr(model, name):
            return getattr(model, name)
    raise UserError(f"--base: {type(model).__name__} has no masked-LM head advkit knows")


def mask_pieces(ids, seg: PieceSegmenter, prob: float, generator, always_mask: bool = False):
    """BERT's masking over whole pieces: of the chosen, 80 % [MASK], 10 % a random piece, 10 % kept.

    Every row gets at least one masked piece. `always_mask` (evaluation) uses [MASK] for all chosen.
    """
    import torch

    special = torch.tensor([seg.sp.piece_to_id(t) for t in (CLS, SEP, PAD)])
    maskable = ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & maskable
    for r in range(ids.shape[0]):
        if not chosen[r].any():
            options = maskable[r].nonzero().flatten()
            chosen[r, options[torch.randint(len(options), (1,), generator=generator)]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    mask_id = seg.sp.piece_to_id(MASK)
    if always_mask:
        inputs[chosen] = mask_id
        return inputs, labels
    roll = torch.rand(ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    # ids 0-4 are <pad> <unk> [CLS] [SEP] [MASK] (train_sentencepiece): random pieces are ordinary ones
    inputs[swap] = torch.randint(5, len(seg), (int(swap.sum()),), generator=generator)
    return inputs, labels


def masked_accuracy(model, windows, seg, cfg, device) -> dict:
    """Top-1 accuracy and loss at masked pieces of held-out text (a fixed mask, all [MASK])."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed + 1)
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.inference_mode():
        for i in range(0, len(windows), cfg.batch_size):
            ids, attn = batch_tensor(windows[i : i + cfg.batch_size], seg)
            inputs, labels = mask_pieces(ids, seg, cfg.mask_prob, gen, always_mask=True)
            where = labels != -100
            hidden = model.base_model(input_ids=inputs.to(device), attention_mask=attn.to(device)).last_hidden_state
            logits = mlm_head(model)(hidden[where.to(device)]).float().cpu()
            correct += int((logits.argmax(-1) == labels[where]).sum())
            total += int(where.sum())
            loss_sum += float(torch.nn.functional.cross_entropy(logits, labels[where], reduction="sum"))
    model.train()
    return {"accuracy": correct / max(1, total), "loss": loss_sum / max(1, total), "masked_pieces": total}


def fill_mask(model, seg: PieceSegmenter, sentences, device, k: int = 5) -> list[dict]:
    """Mask the middle Chinese piece of each sentence; the LM's top-k pieces there."""
    import torch

    out = []
    model.eval()
    for text in sentences:
        surfaces, ids = seg.segment(text)
        options = [i for i, s in enumerate(surfaces) if cjk_only(s)]
        if not options:
            continue
        pos = options[len(options) // 2]
        inputs = [seg.sp.piece_to_id(CLS), *ids, seg.sp.piece_to_id(SEP)]
        inputs[pos + 1] = seg.sp.piece_to_id(MASK)
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([inputs], device=device)).logits[0, pos + 1]
        top = logits.float().topk(k).indices.tolist()
        masked = "".join(surfaces[:pos]) + MASK + "".join(surfaces[pos + 1 :])
        out.append({"masked": masked, "original": surfaces[pos], "top": [seg.piece(i) for i in top]})
    model.train()
    return out


# ---------------------------------------------------------------------------- command


def run(cfg: BuildPieceLmConfig, out: RunDir) -> dict:
    import torch

    from advkit.seeds import seed_everything

    started = time.time()
    heldout, train = split_corpus(cfg)
    proto = train_sentencepiece(train, cfg)
    seg = PieceSegmenter(proto)
    sp_seconds = time.time() - started

    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model, mapped = warm_start(cfg.base, seg)
    model = model.to(device)
    train_windows = chunks_of(seg, train, cfg.max_length)
    heldout_windows = chunks_of(seg, heldout, cfg.max_length)
    if not train_windows:
        raise UserError("the corpus has no line of two or more pieces to train on")
    init = masked_accuracy(model, heldout_windows, seg, cfg, device) if heldout_windows else None

    optimizer, schedule = adamw_linear(model.named_parameters(), cfg.lr, 0.01, cfg.steps, 0.06)
    gen = torch.Generator().manual_seed(cfg.seed)
    # Under torchrun every process draws the same batch order and takes its own of each step's `world`
    # batches; masks come from a generator of its own, and gradients are averaged (as finetune does).
    rank, world = distributed.setup(cfg.device)
    mask_gen = gen if world == 1 else torch.Generator().manual_seed(cfg.seed * 1000 + rank + 1)
    model.train()
    losses, t0 = [], time.time()
    order: list[list[int]] = []
    encoder, head = model.base_model, mlm_head(model)
    for _ in track(range(cfg.steps), "training the piece LM", total=cfg.steps):
        for r in range(world):
            if not order:  # a new pass over the windows
                order = similar_length_batches(train_windows, cfg.batch_size, gen)
            drawn = order.pop()
            if r == rank:
                mine = drawn
        batch = [train_windows[i] for i in mine]
        ids, attn = batch_tensor(batch, seg)
        inputs, labels = mask_pieces(ids, seg, cfg.mask_prob, mask_gen)
        where = (labels != -100).to(device)
        with autocast(device, cfg.precision):
            hidden = encoder(input_ids=inputs.to(device), attention_mask=attn.to(device)).last_hidden_state
            logits = head(hidden[where])  # the vocabulary projection only where a piece is masked
        loss = torch.nn.functional.cross_entropy(logits.float(), labels.to(device)[where])
        loss.backward()
        if world > 1:
            distributed.average_gradients(model.parameters())
        clipped_step(model.parameters(), optimizer, schedule)
        losses.append(loss.item())
    train_seconds = time.time() - t0
    if rank > 0:  # rank 0 measures and writes; the others are done
        return {"command": "build-piece-lm", "metrics": {}}
    model.eval()
    final = masked_accuracy(model, heldout_windows, seg, cfg, device) if heldout_windows else None

    out.create(as_dict(cfg))
    model.to("cpu").save_pretrained(out.path, safe_serialization=True)
    hf_tokenizer(proto, model.config.max_position_embeddings).save_pretrained(out.path)
    (out.path / SPIECE).write_bytes(proto)
    tail = losses[-max(1, min(50, len(losses))) :]
    metrics = {
        "heldout_masked_piece_accuracy": final["accuracy"] if final else None,
        "heldout_masked_piece_loss": final["loss"] if final else None,
        "heldout_masked_piece_accuracy_at_init": init["accuracy"] if init else None,
        "heldout_masked_pieces": final["masked_pieces"] if final else 0,
        "warm_start": "mean of the Traditional forms' rows" if mapped else "mean of the characters' rows",
        "heldout_lines": len(heldout),
        "train_lines": len(train),
        "train_windows": len(train_windows),
        "vocab_size": len(seg),
        "multi_char_pieces": sum(1 for i in range(len(seg)) if len(seg.sp.id_to_piece(i).replace("\u2581", "")) > 1
                                 and not seg.sp.is_control(i)),
        "steps": cfg.steps,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": sum(tail) / len(tail) if losses else None,
        "sentencepiece_seconds": round(sp_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(time.time() - started, 2),
        "fill_mask": fill_mask(model.to(device), seg, FILL_MASK_SENTENCES, device),
    }
    return out.write_metrics(metrics, as_dict(cfg), seed=cfg.seed, device=cfg.device)
