"""Issue 18: each model's Chinese script, and OpenCC conversion where it differs from the data's.

albert-tiny-zh reads Traditional Chinese (ckiplab trained it on Taiwan text); every Chinese
data set here is Simplified. Its inputs are converted with s2tw in training, evaluation, attack
queries and fluency scoring (all through advkit.hf), its masked-LM proposals converted back with
t2s, and no generator gives a Simplified text a Traditional-only character.
"""

import numpy as np
import pytest
from conftest import read_json

from advkit import data, hf, models
from advkit.hf import cjk_only, is_cjk, to_simplified, to_traditional, traditional_only
from advkit.victim import Victim

SENTENCES = ["这家酒店的服务非常好，房间也很干净。", "手机的电池太不耐用了，很失望。",
             "为什么这里的车门总是关不上？"]


def chnsenticorp_dev(n: int) -> list[str]:
    from conftest import require_data

    require_data("chnsenticorp")  # a skip locally, a failure under CI=true
    texts = [e.text for e in data.load("chnsenticorp", "dev").examples if hf.reads_simplified(e.text)]
    return [t[:40] for t in texts[:n]]  # the first 40 characters: enough positions, fast


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """conftest's one_thread for every test here."""


@pytest.fixture(scope="module")
def albert():
    """albert-tiny-zh as a 2-way classifier (fresh head), its tokenizer tagged Traditional."""
    model, tokenizer, folder = models.load_classifier("albert-tiny-zh", num_labels=2)
    return model, tokenizer


# ---------------------------------------------------------------------------- conversion helpers


def test_opencc_converts_both_ways_and_keeps_lengths():
    assert to_traditional("这家酒店为什么") == "這家酒店為什麼"  # s2tw: Taiwan forms (為)
    assert to_simplified("華說種車們") == "华说种车们"
    assert traditional_only("華") and not traditional_only("华") and not traditional_only("abc")
    assert hf.reads_simplified(SENTENCES[0]) and not hf.reads_simplified(to_traditional(SENTENCES[0]))
    assert hf.reads_simplified("乾净的房间很好")  # one stray character does not make a text Traditional
    for text in SENTENCES:
        assert len(to_traditional(text)) == len(text)


def test_registry_names_each_model_s_script():
    assert models.REGISTRY["albert-tiny-zh"].script == "traditional"
    assert models.REGISTRY["m3e-small"].script == "simplified"
    assert models.REGISTRY["minilm-l6"].script is None and models.REGISTRY["tiny-random-en"].script is None
    for spec in models.REGISTRY.values():
        assert (spec.script is None) == (spec.language != "zh"), spec.alias


def test_list_models_shows_the_script(cli):
    r = cli("list", "models")
    assert r.code == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[2] == "script"
    scripts = {line.split()[0]: line.split()[2] for line in rows}
    assert scripts["albert-tiny-zh"] == "traditional" and scripts["m3e-small"] == "simplified"
    assert scripts["minilm-l6"] == "-"


# ---------------------------------------------------------------------------- training, evaluation, queries


def test_traditional_model_reads_converted_text_in_encode_and_victim(albert):
    model, tok = albert
    assert hf.script_of(tok) == "traditional"
    enc = hf.encode(tok, SENTENCES, max_length=64)
    expected = tok([to_traditional(t) for t in SENTENCES], padding=True, truncation=True, max_length=64)
    assert enc["input_ids"].tolist() == expected["input_ids"]
    assert "為" in tok.convert_ids_to_tokens(enc["input_ids"][2].tolist())  # not 为
    # the training path: data.Example batches through hf.encode_examples (finetune/train.py, poison/train.py)
    batch = [data.Example(text=t, label=0) for t in SENTENCES]
    assert hf.encode_examples(tok, batch, 64)["input_ids"].tolist() == expected["input_ids"]
    # pairs: both sentences converted
    pair = hf.encode(tok, SENTENCES[:1], SENTENCES[2:], max_length=64)
    assert pair["input_ids"].tolist() == tok([to_traditional(SENTENCES[0])], [to_traditional(SENTENCES[2])],
                                             truncation=True, max_length=64)["input_ids"]
    # the victim (evaluation and attack queries): same probabilities for a text and its Traditional form
    victim = Victim(model, tok, max_length=64)
    p = victim.predict_proba(SENTENCES + [to_traditional(t) for t in SENTENCES])
    np.testing.assert_allclose(p[:3], p[3:], atol=1e-6)
    assert victim._encode(SENTENCES)["input_ids"].tolist() == expected["input_ids"]


def test_victim_window_is_measured_on_the_converted_text(albert):
    model, tok = albert
    victim = Victim(model, tok, max_length=12)
    text = "这家酒店的服务非常好房间也很干净为什么"
    assert victim.visible_chars(text) == 10  # [CLS] + 10 characters + [SEP]


@pytest.mark.parametrize("alias", ["tiny-random-zh", "tiny-random-en", "m3e-small"])
def test_simplified_and_english_models_are_not_converted(alias):
    _, tok, _ = models.load_classifier(alias, num_labels=2)
    assert hf.script_of(tok) == models.REGISTRY[alias].script
    ids = hf.encode(tok, SENTENCES, max_length=64)["input_ids"].tolist()
    assert ids == tok(SENTENCES, padding=True, truncation=True, max_length=64)["input_ids"]


def test_a_saved_fine_tuned_model_keeps_its_script(albert, tmp_path, tiny_zh):
    """What finetune and poison do (hf.save_pretrained of the loaded classifier): config.json keeps it."""
    model, tok = albert
    hf.save_pretrained(tmp_path / "run" / "model", model, tok)
    assert read_json(tmp_path / "run" / "model" / "config.json")[models.SCRIPT_KEY] == "traditional"
    for ref in (tmp_path / "run", tmp_path / "run" / "model"):  # a run directory, or its model folder
        again, tok2, _ = models.load_classifier(str(ref))
        assert hf.script_of(tok2) == "traditional" and getattr(again.config, models.SCRIPT_KEY) == "traditional"
        assert hf.encode(tok2, SENTENCES[:1])["input_ids"].tolist() == tok([to_traditional(SENTENCES[0])])["input_ids"]
    # and from a saved model's descendants again (a victim fine-tuned from a fine-tuned model)
    again, tok2, _ = models.load_classifier(str(tmp_path / "run"), num_labels=3)
    hf.save_pretrained(tmp_path / "run2" / "model", again, tok2)
    assert read_json(tmp_path / "run2" / "model" / "config.json")[models.SCRIPT_KEY] == "traditional"
    # a folder with no key and no registry entry: unknown, read as is (runs trained before issue 18)
    plain = tmp_path / "plain"
    import shutil

    shutil.copytree(tiny_zh, plain)
    assert models.script_of(str(plain), plain) is None
    # a tampered key is refused
    cfg = plain / "config.json"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("{", '{"advkit_script": "klingon",', 1), encoding="utf-8")
    with pytest.raises(models.UserError, match="advkit_script"):
        models.load_classifier(str(plain))


@pytest.mark.slow
def test_finetune_run_directory_remembers_the_script(cli, tmp_path, shared_data):
    r = cli("finetune", "--model", "albert-tiny-zh", "--dataset", "chnsenticorp", "--train-limit", "16",
            "--limit", "8", "--max-length", "32", "--batch-size", "8", "--epochs", "1", "--seed", "1",
            "--out", tmp_path / "ft", "--quiet")
    assert r.code == 0, r.stderr
    assert read_json(tmp_path / "ft" / "model" / "config.json")[models.SCRIPT_KEY] == "traditional"
    victim = Victim.load(str(tmp_path / "ft"))
    assert hf.script_of(victim.tokenizer) == "traditional"


# ---------------------------------------------------------------------------- fluency


def test_pseudo_perplexity_of_a_traditional_lm_reads_converted_text():
    from advkit.fluency import PseudoPerplexity

    ppl = PseudoPerplexity("albert-tiny-zh", "cpu", 64)
    assert hf.script_of(ppl.tokenizer) == "traditional"
    text = SENTENCES[0]
    assert ppl(text) == pytest.approx(ppl(to_traditional(text)), rel=1e-6)
    raw = PseudoPerplexity("albert-tiny-zh", "cpu", 64)
    hf.set_script(raw.tokenizer, None)  # what it scored before issue 18: the raw Simplified text
    assert ppl(text) < raw(text)


# ---------------------------------------------------------------------------- generators


def test_chars_generator_reads_traditional_and_proposes_simplified():
    import torch

    from advkit.attack_zh import substitutes

    gen = substitutes.load("chars", None)  # albert-tiny-zh
    assert gen.traditional
    units = gen.segment(SENTENCES[2])
    i = units.index("车")
    ids, at = gen.masked_input(units, i)
    assert gen.tokenizer.convert_ids_to_tokens(ids[1:3]) == ["為", "什"]  # the context, converted
    with torch.inference_mode():
        logits = gen.model(input_ids=torch.tensor([ids])).logits[0, at]
    raw = gen.tokenizer.convert_ids_to_tokens(logits.topk(48).indices.tolist())
    cands = gen.candidates(units, i, 48)
    assert len(cands) == 48 and not any(traditional_only(c) for c in cands)
    converted = [to_simplified(t) for t in raw if traditional_only(t) and is_cjk(t[0])]
    assert converted and all(c in cands or c == "车" for c in converted)  # 車 -> 车 and the like, kept


@pytest.mark.parametrize("name", ["chars", "homophone", "glyph", "words"])
def test_generators_never_give_a_simplified_text_a_traditional_character(name):
    from advkit.attack_zh import substitutes

    gen = substitutes.load(name, None)
    texts = chnsenticorp_dev(4) + SENTENCES
    proposed = 0
    for text in texts:
        units = gen.segment(text)
        for i, u in enumerate(units):
            if not cjk_only(u.strip()):
                continue
            cands = gen.candidates(units, i, 48)
            proposed += len(cands)
            bad = [c for c in cands if traditional_only(c)]
            assert not bad, (text, u, bad)
    assert proposed > 100


def test_a_traditional_text_may_keep_traditional_candidates():
    from advkit.attack_zh import substitutes

    gen = substitutes.load("homophone", None)
    text = to_traditional("为什么这里的车门总是关不上")
    units = gen.segment(text)
    assert any(traditional_only(c) for i in range(len(units)) for c in gen.candidates(units, i, 48))


class _Victim:
    """Label 0 unless the text holds 華 or 坏; counts queries, remembers every text asked."""

    class tokenizer:
        mask_token = "[MASK]"

    def __init__(self):
        self.queries, self.asked = 0, []

    def predict_proba(self, texts, texts_b=None):
        self.queries += len(texts)
        self.asked += list(texts)
        return np.array([[0.1, 0.9] if ("華" in t or "坏" in t) else [0.9, 0.1] for t in texts])


class _Proposer:
    """A generator that proposes a Traditional-only character first."""

    def __init__(self, cands):
        self.cands = cands

    def segment(self, text):
        return list(text)

    def candidates(self, units, i, k):
        return self.cands[:k]


def test_search_drops_traditional_candidates_of_any_generator_in_a_simplified_text():
    from advkit.attack_zh.search import greedy_attack

    victim = _Victim()
    record = greedy_attack("酒店很好", 0, victim, _Proposer(["華", "坏"]))
    assert record["status"] == "success" and "華" not in record["adversarial"] and "坏" in record["adversarial"]
    assert not any("華" in t for t in victim.asked)  # never even queried
    # a Traditional text may receive a Traditional character
    victim = _Victim()
    record = greedy_attack("這間酒店環境很好", 0, victim, _Proposer(["華"]))
    assert record["status"] == "success" and "華" in record["adversarial"]
