"""attack-zh and build-piece-lm on tiny models: a --tiny piece LM, a tiny random BERT victim.

The victim is tiny-random-zh with a fresh two-way head (seeded, wider initialisation so its
predictions depend on the text, bias centred). The attacked examples are short news titles
labelled with the victim's own predictions, so every example is attacked, none skipped.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA, advkit, read_json

from advkit.hf import cjk_only, to_traditional, traditional_only
from advkit.victim import Victim

pytestmark = pytest.mark.shared_data  # ../shared/datasets: skipped when missing, a failure under CI=true

UNICODE = ["", " ", "🙂🙂", "\u200b\u0301x", "a\tb\n", "שלום עולם", "中文abc１２３，好！", "𠀀𠀁中", "\ud7ff\ue000",
           "的的的的", "１２３４", "酒店" * 800]


# One thread: on a busy 2-core machine every small forward pass otherwise waits for a second
# OpenMP thread to be scheduled (measured: 0.55 s instead of 0.015 s per piece-LM call).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """conftest's one_thread for every test here."""


def titles(start: int, n: int) -> list[str]:
    lines = (SHARED_DATA / "thucnews" / "train.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[start : start + n]]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An ADVKIT_HOME of our own, sharing the real cache's models (but not its piece LM)."""
    from advkit import models

    for alias in ("albert-tiny-zh", "tiny-random-zh"):
        models.resolve(alias)
    home = tmp_path_factory.mktemp("home")
    (home / "models").mkdir()
    for folder in (models.cache_dir() / "models").iterdir():
        if folder.name != "piece-lm-zh" and folder.is_dir():
            (home / "models" / folder.name).symlink_to(folder)
    return home


@pytest.fixture(scope="module")
def piece_lm(home, tmp_path_factory):
    """`advkit build-piece-lm --tiny` on 400 news titles, written to the default place."""
    corpus = tmp_path_factory.mktemp("corpus") / "titles.txt"
    corpus.write_text("\n".join(titles(0, 400)) + "\n", encoding="utf-8")
    r = advkit("build-piece-lm", "--tiny", "--corpus", corpus, "--quiet", env={"ADVKIT_HOME": str(home), **ONE_THREAD})
    assert r.code == 0, r.stderr
    return home / "models" / "piece-lm-zh"


@pytest.fixture(scope="module")
def victim_dir(tmp_path_factory, tiny_zh):
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_zh, num_labels=2)
    config.initializer_range = 0.3  # tiny-random's 0.02 gives the same output for every text
    config.architectures = None
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_zh)
    with torch.no_grad():
        logits = model(**tokenizer(titles(1000, 200), padding=True, return_tensors="pt")).logits
        model.classifier.bias -= logits.mean(0)  # both labels predicted
    folder = tmp_path_factory.mktemp("victim")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def victim(victim_dir):
    from advkit import models

    return Victim(*models.load_classifier(str(victim_dir))[:2], max_length=64)


@pytest.fixture(scope="module")
def dataset(victim, tmp_path_factory):
    """A data-set folder whose dev and test files hold short titles labelled with the victim's own
    predictions (accuracy before = 1)."""
    texts = titles(2000, 8)
    labels = victim.predict_proba(texts).argmax(1)
    folder = tmp_path_factory.mktemp("data")
    for split in ("dev", "test"):
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels)),
                                             encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def pieces(piece_lm):
    from advkit.attack_zh import substitutes

    return substitutes.load("pieces", str(piece_lm))


class Counting:
    """The real victim, with a log of every text it was asked about."""

    def __init__(self, victim):
        self.victim, self.asked = victim, []

    def __getattr__(self, name):
        return getattr(self.victim, name)

    def predict_proba(self, texts, texts_b=None):
        self.asked.append(list(texts))
        return self.victim.predict_proba(texts, texts_b)


def attack(victim, generator, text, label, **kw):
    from advkit.attack_zh.search import greedy_attack

    return greedy_attack(text, int(label), victim, generator, top_k=kw.pop("top_k", 8), **kw)


# ---------------------------------------------------------------------------- the piece LM


def test_piece_lm_folder_and_metrics(piece_lm, home):
    from transformers import AutoTokenizer

    from advkit.attack_zh.piece_lm import PieceSegmenter

    for name in ("config.json", "model.safetensors", "spiece.model", "tokenizer.json", "metrics.json"):
        assert (piece_lm / name).is_file(), name
    m = read_json(piece_lm / "metrics.json")["metrics"]
    assert 0 <= m["heldout_masked_piece_accuracy"] <= 1 and m["heldout_masked_pieces"] > 0
    assert m["vocab_size"] == read_json(piece_lm / "config.json")["vocab_size"] and m["multi_char_pieces"] > 0
    tok, seg = AutoTokenizer.from_pretrained(piece_lm), PieceSegmenter.load(piece_lm)
    assert tok.mask_token_id == seg.sp.piece_to_id("[MASK]") and tok.mask_token == "[MASK]"
    for text in titles(3000, 20):  # the Hugging Face tokenizer cuts like spiece.model
        assert tok(text, add_special_tokens=False)["input_ids"] == seg.segment(text)[1]
    listed = advkit("list", "models", env={"ADVKIT_HOME": str(home), **ONE_THREAD})
    assert listed.code == 0 and str(piece_lm) in listed.stdout


def test_piece_embeddings_start_as_mean_of_their_characters(piece_lm):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from advkit import models
    from advkit.attack_zh.piece_lm import PieceSegmenter, warm_start

    seg = PieceSegmenter.load(piece_lm)
    model, mapped = warm_start("albert-tiny-zh", seg)
    assert mapped  # albert-tiny-zh reads Traditional: its pieces start from their Traditional forms
    albert = AutoModelForMaskedLM.from_pretrained(models.resolve("albert-tiny-zh"))
    vocab = AutoTokenizer.from_pretrained(models.resolve("albert-tiny-zh")).get_vocab()
    old, new = albert.get_input_embeddings().weight, model.get_input_embeddings().weight
    multi = [i for i in range(len(seg)) if cjk_only(seg.piece(i)) and len(seg.piece(i)) > 1
             and all(c in vocab for c in to_traditional(seg.piece(i)))]
    assert multi
    changed = [i for i in multi if to_traditional(seg.piece(i)) != seg.piece(i)]
    assert changed  # pieces such as 这个 -> 這個: the Traditional rows, not the rare Simplified ones
    for i in multi[:20] + changed[:20]:
        expected = torch.stack([old[vocab[c]] for c in to_traditional(seg.piece(i))]).mean(0)
        assert torch.allclose(new[i], expected, atol=1e-6)
    layer = "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"
    assert torch.equal(model.state_dict()[layer], albert.state_dict()[layer])  # encoder reused
    assert torch.equal(model.get_output_embeddings().weight, new)  # tied decoder


def test_build_refuses_english_corpus(tmp_path):
    corpus = tmp_path / "en.txt"
    corpus.write_text("a plain English sentence\nand another one\n", encoding="utf-8")
    r = advkit("build-piece-lm", "--tiny", "--corpus", corpus, "--out", tmp_path / "lm", "--quiet", env=ONE_THREAD)
    assert r.code == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- generators


@pytest.mark.parametrize("name", ["pieces", "spans", "chars", "words", "glyph", "homophone"])
def test_segments_rebuild_the_text_and_candidates_are_strings(name, pieces, piece_lm, tiny_zh):
    from advkit.attack_zh import substitutes

    lm = {"chars": str(tiny_zh), "spans": str(piece_lm)}.get(name)
    gen = pieces if name == "pieces" else substitutes.load(name, lm)
    for text in UNICODE + titles(3000, 5):
        units = gen.segment(text)
        assert "".join(units) == text
        for i in range(min(3, len(units))):
            assert all(isinstance(c, str) for c in gen.candidates(units, i, 8))


def test_span_proposer_ranks_pieces_of_the_units_length_by_the_character_lm(piece_lm):
    """spans: the candidates of a k-character piece are pieces of k characters, in the order of the sum
    of albert-tiny-zh's log-probabilities of their (Traditional) characters at k masks, checked against
    a brute-force loop over the vocabulary."""
    import torch

    from advkit.attack_zh import substitutes

    gen = substitutes.load("spans", str(piece_lm))
    units = gen.segment("国家统计局发布了最新的经济数据")
    i = next(j for j, u in enumerate(units) if cjk_only(u) and len(u) >= 2)
    proposed = gen.candidates(units, i, 5)
    assert proposed and all(len(c) == len(units[i]) and cjk_only(c) for c in proposed)
    chars = gen.chars
    ids, at = chars.masked_input(units, i, masks=len(units[i]))
    assert ids[at : at + len(units[i])] == [chars.mask_id] * len(units[i])
    with torch.inference_mode():
        logp = torch.log_softmax(chars.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    scores = {}
    for p in range(len(gen.segmenter)):
        piece = gen.segmenter.piece(p)
        read = to_traditional(piece)
        if (len(piece) == len(units[i]) and cjk_only(piece) and not gen.segmenter.sp.is_control(p)
                and len(read) == len(piece) and all(c in chars.vocab for c in read)):
            scores[piece] = sum(float(logp[at + j, chars.vocab[c]]) for j, c in enumerate(read))
    best = sorted(scores, key=scores.get, reverse=True)
    assert proposed == [p for p in best if not traditional_only(p)][:5]


def test_dictionary_generators_propose_real_substitutes():
    from advkit.attack_zh import substitutes

    assert "喜爱" in substitutes.load("words", None).candidates(["喜欢"], 0, 48)  # HIT Cilin synonyms
    assert substitutes.load("glyph", None).candidates(["延"], 0, 48) == ["诞", "蜒"]  # TextAttack morphonyms
    sounds = substitutes.load("homophone", None).candidates(["好"], 0, 48)
    assert sounds and "号" in sounds and all(cjk_only(c) for c in sounds) and "好" not in sounds


def test_masked_lm_uses_the_tokenizers_mask_at_the_masks_position(tiny_zh, tmp_path):
    import torch
    from transformers import AutoTokenizer

    from advkit.attack_zh.substitutes import MaskedLMSubstitutes

    shutil.copytree(tiny_zh, tmp_path / "lm")
    tok = AutoTokenizer.from_pretrained(tmp_path / "lm", mask_token="[unused1]")  # not "[MASK]"
    tok.save_pretrained(tmp_path / "lm")
    gen = MaskedLMSubstitutes(str(tmp_path / "lm"), "chars")
    units = gen.segment("hello world酒店很好")  # latin first: unit index != token index
    i = units.index("店")
    ids, at = gen.masked_input(units, i)
    assert ids[at] == tok.convert_tokens_to_ids("[unused1]") and ids.count(ids[at]) == 1
    assert at == 1 + len(tok("hello world酒", add_special_tokens=False)["input_ids"]) != i + 1
    with torch.no_grad():
        logits = gen.model(input_ids=torch.tensor([ids])).logits[0, at]
    ranked = tok.convert_ids_to_tokens(logits.topk(15).indices.tolist())  # in order, Traditional-only ones left out
    assert gen.candidates(units, i, 5) == [t for t in ranked if not traditional_only(t)][:5]


def test_piece_lm_candidates_are_its_top_pieces(pieces):
    import torch

    units = pieces.segment("今天股市大幅上涨，投资者信心增强")
    i = next(j for j, u in enumerate(units) if cjk_only(u))
    ids, at = pieces.masked_input(units, i)
    assert ids[at] == pieces.tokenizer.mask_token_id
    with torch.no_grad():
        top = pieces.model(input_ids=torch.tensor([ids])).logits[0, at].topk(4).indices.tolist()
    assert pieces.candidates(units, i, 4) == [pieces.segmenter.piece(t) for t in top]


# ---------------------------------------------------------------------------- the search


def test_search_records(victim, pieces, dataset):
    """Positions never drift; candidates are Chinese and new; success stops at the first flip;
    the query count is the number of texts the victim classified."""
    import numpy as np

    rows = [line.split("\t") for line in (dataset / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    seen_success = seen_multi = False
    for text, label in rows:
        counting = Counting(victim)
        r = attack(counting, pieces, text, label)
        assert r["queries"] == sum(len(a) for a in counting.asked)
        assert r["units"] == pieces.segment(text) and "".join(r["units"]) == text
        rebuilt = list(r["units"])
        for c in r["changed"]:
            assert rebuilt[c["position"]] == c["original"] and c["substitute"] != c["original"]
            assert cjk_only(c["substitute"].strip())
            rebuilt[c["position"]] = c["substitute"]
        assert "".join(rebuilt) == r["adversarial"]
        assert r["changed_units"] == len(r["changed"]) <= max(1, int(0.4 * r["n_units"]))
        assert r["changed_chars"] >= r["changed_units"]
        seen_multi |= r["changed_units"] >= 2
        if r["status"] == "success":
            seen_success = True
            assert int(victim.predict_proba([r["adversarial"]]).argmax()) != int(label)
            undo = list(rebuilt)  # before the last change the victim was still right
            last = r["changed"][-1]
            undo[last["position"]] = last["original"]
            assert int(victim.predict_proba(["".join(undo)]).argmax()) == int(label)
            assert r["adversarial"] in counting.asked[-1]  # the search ended with that batch
        for batch in counting.asked[2:]:  # candidates that change nothing are never sent
            assert text not in batch
        assert np.isfinite(r["prob_label_after"])
    assert seen_success and seen_multi


def test_top1_candidate_is_tried_and_unhelpful_candidates_are_not_perturbations(victim, pieces, dataset):
    from advkit.attack_zh.search import _replace

    class Recording:  # the real generator, offering the unit itself first (a candidate that changes nothing)
        calls = []

        def segment(self, text):
            return pieces.segment(text)

        def candidates(self, units, i, k):
            out = [units[i].strip(), *pieces.candidates(units, i, k)]
            self.calls.append((i, list(units), out))
            return out

    rows = [line.split("\t") for line in (dataset / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    for text, label in rows[:4]:
        gen, counting = Recording(), Counting(victim)
        gen.calls = []
        r = attack(counting, gen, text, label)
        assert all(c["substitute"] != c["original"] for c in r["changed"])
        tried = [(i, units, [c for c in out if cjk_only(c) and c != r["units"][i].strip()])
                 for i, units, out in gen.calls]
        tried = [t for t in tried if t[2]]
        batches = counting.asked[2:]  # after the clean prediction and the importance batch
        assert len(batches) == len(tried)
        for (i, units, valid), batch in zip(tried, batches):
            assert batch[0] == "".join(units[:i]) + _replace(r["units"][i], valid[0]) + "".join(units[i + 1 :])
            assert len(batch) == len(valid) and text not in batch


def test_budgets_are_respected(victim, pieces, dataset):
    rows = [line.split("\t") for line in (dataset / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    for text, label in rows:
        r = attack(victim, pieces, text, label, max_queries=12, max_perturb=0.1)
        assert r["queries"] <= 12
        assert r["changed_units"] <= max(1, int(0.1 * r["n_units"]))
        if r["status"] == "failed":
            assert r["reason"] in ("query budget", "perturb budget", "exhausted")


@pytest.mark.parametrize("name", ["pieces", "chars", "words", "glyph", "homophone"])
def test_arbitrary_unicode_empty_and_long_inputs_do_not_crash(name, victim, pieces, tiny_zh):
    from advkit.attack_zh import substitutes

    gen = pieces if name == "pieces" else substitutes.load(name, str(tiny_zh) if name == "chars" else None)
    for text in UNICODE:
        label = int(victim.predict_proba([text]).argmax())
        r = attack(victim, gen, text, label, max_queries=60)
        assert r["status"] in ("success", "failed") and r["queries"] <= 60
        assert len(r["adversarial"]) > 0 or text == ""
        json.dumps(r, ensure_ascii=False)


def test_pairs_attack_the_first_sentence(victim, pieces):
    from advkit.attack_zh.search import greedy_attack

    a, b = titles(4000, 2)
    counting = Counting(victim)
    label = int(victim.predict_proba([a], [b]).argmax())
    r = greedy_attack(a, label, counting, pieces, text_b=b, top_k=8)
    assert r["queries"] == sum(len(x) for x in counting.asked)
    assert "".join(r["units"]) == a


def test_units_past_the_victims_window_are_neither_ranked_nor_tried(victim, pieces):
    """A long text truncated at 64 tokens: only units the victim sees are masked and swapped."""
    from advkit.attack_zh.search import attackable

    text = "".join(titles(5000, 12))  # several hundred characters
    seen = victim.visible_chars(text)
    assert 0 < seen < len(text)
    assert victim.predict_proba([text[:seen]]).tolist() == victim.predict_proba([text]).tolist()
    assert victim.visible_chars(text[:40]) == 40
    counting = Counting(victim)
    label = int(victim.predict_proba([text]).argmax())
    r = attack(counting, pieces, text, label, max_queries=400)
    starts = [len("".join(r["units"][:i])) for i in range(len(r["units"]))]
    in_window = [i for i, u in enumerate(r["units"]) if attackable(u) and starts[i] < seen]
    assert len(counting.asked[1]) == len(in_window) < sum(attackable(u) for u in r["units"])
    assert all(starts[c["position"]] < seen for c in r["changed"])
    # Every later query keeps the text from the first unit past the window on (a swap may change the
    # length of what comes before, so compare the ends, not the same positions).
    cut = min([s for s in starts if s >= seen] + [len(text)])
    assert "".join(r["units"]) == text and cut < len(text) and len(counting.asked) > 2
    for batch in counting.asked[2:]:
        assert all(t.endswith(text[cut:]) for t in batch)


def test_label_check_rules():
    from advkit.attack_zh.label_check import LabelCheck

    pos = ["屏幕不错，很喜欢", "质量不错，没有缺点", "服务不错，房间干净"] * 4
    neg = ["屏幕不好，很失望", "质量不好，问题很多", "服务太差，房间不好"] * 4
    check = LabelCheck(pos + neg, [1] * len(pos) + [0] * len(neg), 2, min_count=3)
    assert check.mode == "lexicon"
    assert not check("清晰", "不", 1)  # adds a negation
    assert not check("不错", "很好", 1)  # removes one: conservative
    assert not check("喜欢", "失望", 1)  # a negative word in a positive review
    assert not check("干净", "太差", 1)
    assert check("屏幕", "房间", 1)  # both in either class
    assert check("屏幕", "失望", 0)  # towards the true label is no change of label
    assert not check("缺点", "问题", 1)  # here 缺点 occurs only in "没有缺点" (positive): a real shift
    assert not check("喜欢", "陌生词汇", 1)  # the positive evidence is gone
    assert check("房间", "陌生词汇", 1)  # neither is evidence
    assert check("非常", "十分", 1) and not check("非常", "不", 1)  # 非常 'very' negates nothing
    negation_only = LabelCheck()
    assert negation_only.mode == "negation" and negation_only("喜欢", "失望", 1) and not negation_only("好", "不好", 1)


def test_label_check_judges_the_word_around_a_unit_in_context():
    """错 -> 好 alone says little, but inside 不错 it makes 不好; 好 -> 差 after 非常 is judged as the words
    themselves (jieba cuts 非常|好)."""
    from advkit.attack_zh.label_check import LabelCheck, word_around

    assert word_around("不", "错", "的酒店") == "不错" and word_around("不", "好", "的酒店") == "不好"
    assert word_around("前台服务非常", "差", "") == "差" and word_around("", "酒店", "") == "酒店"
    # 错 and 好 each occur 4 times in either class (不错 / 错过, 好评 / 不好): as characters they are no evidence
    pos = ["不错的酒店", "好评，舒服", "服务非常好"] * 4
    neg = ["不好的酒店", "错过了，失望", "服务非常差"] * 4
    check = LabelCheck(pos + neg, [1] * len(pos) + [0] * len(neg), 2, min_count=3)
    assert check("错", "好", 1)  # the units alone pass ...
    assert not check("错", "好", 1, "这是一家不", "的酒店")  # ... but in context 不错 becomes 不好: rejected
    assert not check("好", "差", 1, "前台服务非常", "")  # 非常好 -> 非常差
    assert check("酒店", "宾馆", 1, "不错的", "")  # a word that marks no class, in context too
    negation_only = LabelCheck()  # no lexicon: the context adds no negation, so the swap passes
    assert negation_only("错", "好", 1, "不", "的酒店")


def test_a_users_file_gets_the_lexicon_from_its_train_part(tmp_path):
    """On a user's CSV the lexicon is counted on the file's train part (advkit.data's disjoint 80 %), so
    不错 -> 不好 through single characters is rejected, as on a registered data set."""
    from advkit import data
    from advkit.attack_zh import label_check

    rows = [("不错的酒店，房间干净", 1), ("服务不错，位置好", 1), ("早餐不错，下次还来", 1),
            ("不好的酒店，房间很脏", 0), ("服务不好，位置偏", 0), ("早餐不好，不会再来", 0)]
    csv = tmp_path / "hotel.csv"
    csv.write_text("review,label\n" + "".join(f"{t}{i},{y}\n" for i in range(40) for t, y in rows),
                   encoding="utf-8")
    check = label_check.load("lexicon", str(csv), text_column="review")  # as attack-zh --text-column review
    assert check.mode == "lexicon"
    train = data.load(str(csv), "train", text_column="review")
    test = {e.text for e in data.load(str(csv), "test", text_column="review").examples}
    counted = {t for c in check.corpus for t in c.split("\n")}
    assert counted == {e.text for e in train.examples} and not counted & test  # never the attacked part
    assert not check("错", "好", 1, "", "的酒店，房间干净")  # 不错 -> 不好 after 不: needs the context ...
    assert not check("错", "好", 1, "不", "的酒店，房间干净")
    assert check("酒店", "宾馆", 1, "不错的", "，房间干净")


def test_rejected_candidates_are_never_queried(victim, pieces, dataset):
    rows = [line.split("\t") for line in (dataset / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    text, label = rows[0]
    counting = Counting(victim)
    r = attack(counting, pieces, text, label, check=lambda unit, cand, y, left, right: False)
    assert r["status"] == "failed" and r["changed"] == [] and r["rejected"] > 0
    assert len(counting.asked) == 2  # the clean prediction and the importance batch, nothing else
    plain = attack(Counting(victim), pieces, text, label)
    assert plain["rejected"] == 0


# ---------------------------------------------------------------------------- metrics


def test_metric_definitions_on_hand_made_records():
    from advkit.metrics import attack_metrics

    def rec(status, queries, changed=0, units=10, chars=20, seconds=1.0, **quality):
        return {"status": status, "queries": queries, "changed_units": changed, "n_units": units,
                "changed_chars": 2 * changed, "chars": chars, "seconds": seconds, **quality}

    records = [rec("success", 10, 1, fluency_ppl_before=10.0, fluency_ppl_after=20.0, similarity=0.9),
               rec("success", 30, 3, fluency_ppl_before=30.0, fluency_ppl_after=40.0, similarity=0.7),
               rec("failed", 50, 4), rec("skipped", 1, seconds=0.0)]
    m = attack_metrics(records)
    assert m["attack_success_rate"] == pytest.approx(2 / 3)  # the skipped example is not in it
    assert m["accuracy_before"] == pytest.approx(3 / 4) and m["accuracy_under_attack"] == pytest.approx(1 / 4)
    assert m["avg_queries"] == pytest.approx(30.0)  # over the attacked three
    assert m["perturbed_piece_ratio"] == pytest.approx(0.2) and m["perturbed_char_ratio"] == pytest.approx(0.2)
    assert (m["fluency_ppl_before"], m["fluency_ppl_after"]) == (pytest.approx(20.0), pytest.approx(30.0))
    assert m["similarity"] == pytest.approx(0.8) and m["seconds_per_example"] == pytest.approx(0.75)
    assert (m["successes"], m["failures"], m["skipped"]) == (2, 1, 1)
    assert "label_preserved_share" not in m  # no judge ran
    judged = [dict(records[0], label=1, judge_before=1, judge_after=1), dict(records[1], label=1, judge_before=0,
                                                                           judge_after=0)] + records[2:]
    m = attack_metrics(judged)
    assert m["label_preserved_share"] == 0.5 and m["label_preserving_success_rate"] == pytest.approx(1 / 3)
    assert m["judge_accuracy_before"] == 0.5


def test_pseudo_perplexity_prefers_the_model_s_own_predictions(tiny_zh):
    import math

    from advkit.fluency import PseudoPerplexity

    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    ppl = PseudoPerplexity(str(tiny_zh), "cpu", 64)
    assert ppl("") is None
    # By hand, one text at a time: mask each character in turn, exp of the mean negative log-likelihood.
    model, tok = AutoModelForMaskedLM.from_pretrained(tiny_zh).eval(), AutoTokenizer.from_pretrained(tiny_zh)
    text = "今天天气很好"
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text) + 2  # one token per character, between [CLS] and [SEP]
    nll = []
    for t in range(1, len(ids) - 1):
        masked = list(ids)
        masked[t] = tok.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([masked])).logits[0, t]
        nll.append(-torch.log_softmax(logits, -1)[ids[t]].item())
    assert ppl(text) == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-4)
    # One character alone: PPPL = 1 / P(it | [CLS] [MASK] [SEP]). The model's own top character scores
    # lowest of all characters, the one it finds least likely highest.
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=torch.tensor([[tok.cls_token_id, tok.mask_token_id,
                                                             tok.sep_token_id]])).logits[0, 1], -1)
    chars = [i for i, p in enumerate(tok.convert_ids_to_tokens(range(len(probs))))
             if len(p) == 1 and cjk_only(p) and tok(p, add_special_tokens=False)["input_ids"] == [i]]
    best, worst = max(chars, key=lambda i: probs[i]), min(chars, key=lambda i: probs[i])
    best_ppl, worst_ppl = ppl(tok.convert_ids_to_tokens(best)), ppl(tok.convert_ids_to_tokens(worst))
    assert best_ppl == pytest.approx(1 / probs[best].item(), rel=1e-4)
    assert worst_ppl == pytest.approx(1 / probs[worst].item(), rel=1e-4) and best_ppl < worst_ppl


# ---------------------------------------------------------------------------- the command


def _attack_cli(out, piece_lm, victim_dir, dataset, *extra):
    return advkit("attack-zh", "--model", victim_dir, "--dataset", dataset, "--lm", piece_lm, "--top-k", "8",
                  "--similarity-model", "tiny-random-zh", "--fluency-lm", "tiny-random-zh", "--out", out,
                  "--quiet", *extra, env=ONE_THREAD)


def _records(path):
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        r.pop("seconds")
        out.append(r)
    return out


def test_a_judge_that_is_the_victim_keeps_no_label(tmp_path, piece_lm, victim_dir, dataset):
    """--judge: the independent classifier's label on each success's original and adversarial text. With
    the victim itself as judge every success is by construction not label-preserving, and its originals
    are all judged right; a judge that cannot load is refused before --out is written."""
    r = _attack_cli(tmp_path / "judged", piece_lm, victim_dir, dataset, "--limit", "4", "--judge", victim_dir)
    assert r.code == 0, r.stderr
    m = read_json(tmp_path / "judged" / "metrics.json")["metrics"]
    rows = [json.loads(line) for line in (tmp_path / "judged" / "records.jsonl").read_text("utf-8").splitlines()]
    won = [r for r in rows if r["status"] == "success"]
    assert won and all(r["judge_before"] == r["label"] != r["judge_after"] == r["prediction_after"] for r in won)
    assert m["label_preserved_share"] == 0 and m["label_preserving_success_rate"] == 0
    assert m["judge_accuracy_before"] == 1
    r = _attack_cli(tmp_path / "bad", piece_lm, victim_dir, dataset, "--judge", tmp_path / "no-such-run")
    assert r.code == 2 and "no-such-run" in r.stderr and not (tmp_path / "bad").exists()


def test_a_pairs_second_sentence_is_attacked_beside_its_fixed_first(tmp_path, piece_lm, victim_dir, dataset):
    """--attacked second (lcqmc's question pairs): the search edits the second sentence, and the victim and the
    judge read every pair in its own order, the first sentence unchanged."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from advkit.victim import Victim

    firsts, seconds = titles(2100, 8), titles(2300, 8)
    model, tokenizer = BertForSequenceClassification.from_pretrained(victim_dir).eval(), AutoTokenizer.from_pretrained(victim_dir)
    with torch.no_grad():  # the single-title victim, its bias centred on pairs: both labels predicted
        model.classifier.bias -= model(**tokenizer(firsts, seconds, padding=True, return_tensors="pt")).logits.mean(0)
    victim_dir = tmp_path / "pair-victim"
    model.save_pretrained(victim_dir)
    tokenizer.save_pretrained(victim_dir)
    victim = Victim(model, tokenizer, max_length=64)
    probs = victim.predict_proba(firsts, seconds)
    labels = probs.argmax(1)
    assert abs(probs - victim.predict_proba(seconds, firsts)).max() > 1e-3  # the order matters to it
    folder = tmp_path / "pairs"
    folder.mkdir()
    for split in ("dev", "test"):
        (folder / f"{split}.tsv").write_text("q1\tq2\tlabel\n" + "".join(
            f"{a}\t{b}\t{y}\n" for a, b, y in zip(firsts, seconds, labels)), encoding="utf-8")
    out = tmp_path / "second"
    r = _attack_cli(out, piece_lm, victim_dir, folder, "--text-column", "q1", "--text-b-column", "q2",
                    "--attacked", "second", "--judge", victim_dir)
    assert r.code == 0, r.stderr
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text("utf-8").splitlines()]
    assert sorted(r["text"] for r in rows) == sorted(seconds) and sorted(r["text_b"] for r in rows) == sorted(firsts)
    for r in rows:  # read as (first, second)
        assert r["prob_label_before"] == pytest.approx(float(probs[firsts.index(r["text_b"]), r["label"]]), abs=1e-5)
    won = [r for r in rows if r["status"] == "success"]
    assert won
    for r in won:
        assert int(victim.predict_proba([r["text_b"]], [r["adversarial"]]).argmax()) == r["prediction_after"]
        assert r["judge_before"] == r["label"] and r["judge_after"] == r["prediction_after"]  # the victim as judge
    r = _attack_cli(tmp_path / "single", piece_lm, victim_dir, dataset, "--attacked", "second")
    assert r.code == 2 and "not a data set of pairs" in r.stderr and not (tmp_path / "single").exists()


def test_command_and_resume_give_the_same_records(tmp_path, piece_lm, victim_dir, dataset):
    full = tmp_path / "full"
    r = _attack_cli(full, piece_lm, victim_dir, dataset)
    assert r.code == 0, r.stderr
    doc = read_json(full / "metrics.json")
    m = doc["metrics"]
    assert doc["command"] == "attack-zh" and m["examples"] == 8 and m["accuracy_before"] == 1.0
    # The numbers again from the records: every example attacked (labels are the victim's own), rates and
    # means over the successes, and a success's fluency scores are the PPPL of its text and of its adversary.
    from advkit import models
    from advkit.fluency import PseudoPerplexity

    rows = [json.loads(line) for line in (full / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    won = [r for r in rows if r["status"] == "success"]
    assert won and (m["successes"], m["failures"], m["skipped"]) == (len(won), 8 - len(won), 0)
    assert m["attack_success_rate"] == len(won) / 8
    assert m["avg_queries"] == pytest.approx(sum(r["queries"] for r in rows) / 8)
    assert m["similarity"] == pytest.approx(sum(r["similarity"] for r in won) / len(won))
    ppl = PseudoPerplexity(str(models.resolve("tiny-random-zh")), "cpu", 64)
    assert (won[0]["fluency_ppl_before"], won[0]["fluency_ppl_after"]) == (
        pytest.approx(ppl(won[0]["text"]), rel=1e-5), pytest.approx(ppl(won[0]["adversarial"]), rel=1e-5))
    assert m["fluency_ppl_after"] == pytest.approx(sum(r["fluency_ppl_after"] for r in won) / len(won))
    assert "~~" in (full / "sample.md").read_text(encoding="utf-8")
    records = _records(full / "records.jsonl")
    assert [r["index"] for r in records] == list(range(8))

    # an interruption: three records written, the fourth cut in the middle of its line
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    (cut / "metrics.json").unlink()
    lines = (full / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (cut / "records.jsonl").write_text("".join(lines[:3]) + lines[3][:40], encoding="utf-8")
    r = _attack_cli(cut, piece_lm, victim_dir, dataset, "--resume")
    assert r.code == 0, r.stderr
    assert _records(cut / "records.jsonl") == records
    a, b = read_json(full / "metrics.json")["metrics"], read_json(cut / "metrics.json")["metrics"]
    a.pop("seconds_per_example"), b.pop("seconds_per_example")
    assert a == b

    changed = _attack_cli(cut, piece_lm, victim_dir, dataset, "--resume", "--max-perturb", "0.2")
    assert changed.code == 2 and "max_perturb" in changed.stderr


def test_english_text_is_refused(tmp_path, victim_dir):
    path = tmp_path / "en.tsv"  # --split all: two rows are too few for a dev part
    path.write_text("sentence\tlabel\nthis is fine\t1\nnot good\t0\n", encoding="utf-8")
    for data in (path, "sst2"):
        r = advkit("attack-zh", "--model", victim_dir, "--dataset", data, "--out", tmp_path / "x", "--quiet",
                   *(["--split", "all"] if data == path else []), env=ONE_THREAD)
        assert r.code == 2 and "Chinese" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------- through evaluate


def test_evaluate_runs_attack_zh_and_cards_chinese_models(tmp_path, piece_lm, victim_dir, dataset):
    """`evaluate --attack zh-pieces` is attack-zh's search: the same records and numbers, under
    evaluate's stable metric names; a card on Chinese data runs every Chinese generator."""
    own = tmp_path / "own"
    r = advkit("attack-zh", "--model", victim_dir, "--dataset", dataset, "--lm", piece_lm, "--limit", "4",
               "--out", own, "--quiet", env=ONE_THREAD)  # evaluate's defaults: top 48, m3e-small similarity
    assert r.code == 0, r.stderr
    via = tmp_path / "via"
    r = advkit("evaluate", "--model", victim_dir, "--dataset", dataset, "--limit", "4", "--attack", "zh-pieces",
               "--attack-lm", piece_lm, "--out", via, "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    assert _records(via / "records.jsonl") == _records(own / "records.jsonl")
    doc = read_json(via / "metrics.json")
    m = doc["metrics"]
    assert doc["command"] == "evaluate" and m["attack"] == "zh-pieces"
    assert m["accuracy_under_attack"] == read_json(own / "metrics.json")["metrics"]["accuracy_under_attack"]
    assert "accuracy_after" not in m  # one name per quantity
    assert m["label_check"] == "negation"  # a folder without a train file: no lexicon to count
    unchecked = tmp_path / "unchecked"
    r = advkit("evaluate", "--model", victim_dir, "--dataset", dataset, "--limit", "2", "--attack", "zh-glyph",
               "--label-check", "none", "--out", unchecked, "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    assert read_json(unchecked / "metrics.json")["metrics"]["label_check"] == "none"

    card = tmp_path / "card"
    r = advkit("evaluate", "--model", victim_dir, "--dataset", dataset, "--limit", "3", "--card", "--attack-lm",
               piece_lm, "--query-budget", "60", "--out", card, "--quiet", env=ONE_THREAD)
    assert r.code == 0, r.stderr
    text = (card / "card.md").read_text(encoding="utf-8")
    for name in ("zh-pieces", "zh-spans", "zh-chars", "zh-words", "zh-glyph", "zh-homophone"):
        assert f"accuracy under {name} |" in text
        assert read_json(card / name / "metrics.json")["metrics"]["avg_queries"] <= 60
    assert read_json(card / "zh-chars" / "run.json")["config"]["lm"] is None  # characters: albert-tiny-zh
    assert (card / "perturbation.png").stat().st_size > 0
    assert "at most 0.4 of the units changed, label check negation" in text  # the card says which swaps counted

    report = tmp_path / "report"
    r = advkit("report", via, card / "zh-words", "--out", report)
    assert r.code == 0, r.stderr
    assert "## Robustness" in (report / "report.md").read_text(encoding="utf-8")
    assert (report / "perturbation.png").stat().st_size > 0


def test_evaluate_refuses_chinese_attacks_on_english_data(tmp_path, victim_dir):
    r = advkit("evaluate", "--model", victim_dir, "--dataset", "sst2", "--limit", "4", "--attack", "zh-chars",
               "--out", tmp_path / "x", "--quiet", env=ONE_THREAD)
    assert r.code == 2 and "Chinese" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_every_chinese_attack_runs_offline(tmp_path, piece_lm, victim_dir, dataset):
    """Each `evaluate --attack zh-*` attacks one example with every proxy pointed at a closed port."""
    closed = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"}
    script = f"""
from advkit import evaluate
from advkit.attack_zh import ZH_ATTACKS
from advkit.evaluate import EvaluateConfig
for name in ZH_ATTACKS:
    lm = {str(piece_lm)!r} if name in ("zh-pieces", "zh-spans") else None
    cfg = EvaluateConfig(model={str(victim_dir)!r}, dataset={str(dataset)!r}, limit=1, attack=name, attack_lm=lm,
                         query_budget=40)
    cfg.check()
    m = evaluate.run(cfg, None)["metrics"]
    assert m["attack"] == name and m["examples"] == 1, m
    print(name)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **closed, **ONE_THREAD}, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["zh-pieces", "zh-spans", "zh-chars", "zh-words", "zh-glyph", "zh-homophone"]


@pytest.mark.shared_data()
def test_the_piece_lm_learns_from_half_a_and_the_fluency_judge_counts_half_b():
    """The proposer and the fluency judge share no line of the Chinese training text: the piece LM trains on
    half A (and is scored on held-out lines of B), the trigram judge is counted on half B."""
    from advkit import data
    from advkit.attack_zh.config import TINY_PIECE_LM, BuildPieceLmConfig
    from advkit.attack_zh.piece_lm import split_corpus
    from advkit.fluency import ngram_judge

    a, _ = data.training_text("zh", half="A")
    b, _ = data.training_text("zh", half="B")
    everything, _ = data.training_text("zh")
    assert a and b and not set(a) & set(b) and set(a) | set(b) == set(everything)
    assert 0.45 < len(a) / len(everything) < 0.55
    heldout, train = split_corpus(BuildPieceLmConfig(**TINY_PIECE_LM))
    assert set(train) <= set(a) and set(heldout) <= set(b)
    judge = ngram_judge(None)
    starts = sum(n for g, n in judge.tri.items() if g.startswith(judge.BOS * 2))  # one per line counted
    assert starts == len(b)
