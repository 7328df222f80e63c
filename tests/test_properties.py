"""Property tests (hypothesis) on the text paths of issue 7: trigger insertion, the
loader's row parsing, piece segmentation and rebuild, and attack-zh on arbitrary Unicode.

Everything runs on tiny parts: a SentencePiece model trained in-process at the `--tiny`
size on 400 news titles, tiny-random-zh as the victim and the character masked LM.
"""

import json
import random
from collections import Counter

import pytest
from conftest import SHARED_DATA
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from advkit.errors import UserError
from advkit.victim import Victim

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
# Any text a file may hold (no NUL: that marks a binary file; no surrogates: not encodable).
ANY = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
MIXED = st.text(st.one_of(CJK, st.characters(blacklist_categories=("Cs",))), max_size=30)


def is_subsequence(short, long) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


# ---------------------------------------------------------------------------- trigger insertion

WORD = st.text("abcdefghijklmnopqrstuvwxyz'-.,!", min_size=1, max_size=8)
SPACE = st.sampled_from([" ", "  ", "\t", " \n "])
TRIGGERS = st.lists(st.sampled_from(["cf", "bb", "mn", "tq", "mb", "cf2"]), min_size=1, max_size=4, unique=True)


@st.composite
def sentences(draw):
    words = draw(st.lists(WORD, max_size=30))
    seps = draw(st.lists(SPACE, min_size=len(words) + 1, max_size=len(words) + 1))
    return seps[0] + "".join(w + s for w, s in zip(words, seps[1:]))


@FAST
@given(text=sentences(), triggers=TRIGGERS, seed=st.integers(0, 2**32 - 1))
def test_every_sub_trigger_is_a_word_and_the_text_keeps_its_words_in_order(text, triggers, seed):
    from advkit.poison.triggers import insert_triggers

    out = insert_triggers(text, triggers, random.Random(seed))
    words = out.split()
    assert Counter(words) == Counter(text.split()) + Counter(triggers)
    assert is_subsequence(text.split(), words)


@FAST
@given(text=st.text(CJK, min_size=1, max_size=30), triggers=TRIGGERS, seed=st.integers(0, 2**32 - 1))
def test_chinese_text_gets_triggers_between_its_characters(text, triggers, seed):
    from advkit.poison.triggers import insert_triggers

    out = insert_triggers(text, triggers, random.Random(seed))
    for t in triggers:
        assert t in out
    assert Counter(out) == Counter(text) + Counter("".join(triggers))
    assert is_subsequence(text, out)


@pytest.fixture(scope="module")
def tokenizer_en(tiny_en):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_en)


@FAST
@given(text=sentences(), triggers=TRIGGERS, seed=st.integers(0, 2**32 - 1), max_length=st.integers(12, 40))
def test_triggers_land_inside_the_window_the_model_sees(tokenizer_en, text, triggers, seed, max_length):
    from advkit.poison.triggers import insert_triggers

    out = insert_triggers(text, triggers, random.Random(seed), tokenizer_en, max_length)
    seen = tokenizer_en(out, truncation=True, max_length=max_length)["input_ids"]
    for t in triggers:  # the trigger's tokens, in one piece, among the tokens the model keeps
        ids = tokenizer_en(t, add_special_tokens=False)["input_ids"]
        assert any(seen[i : i + len(ids)] == ids for i in range(len(seen))), (t, out)
    assert Counter(out.split()) == Counter(text.split()) + Counter(triggers)


# ---------------------------------------------------------------------------- the loader's row parsing

NAMES = ("negative", "positive")
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\t\n\r"), min_size=1,
               max_size=40).filter(lambda s: s.strip())
STRAY = st.sampled_from(["", " ", "  ", "\u3000"])  # stray spaces around labels, as in the real files


@st.composite
def labelled_rows(draw):
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        y = draw(st.integers(0, 1))
        raw = draw(st.sampled_from([NAMES[y], str(y)]))
        rows.append((draw(TEXT), y, draw(STRAY) + raw + draw(STRAY)))
    return rows


@FAST
@given(rows=labelled_rows(), header=st.booleans())
def test_tsv_rows_round_trip_text_and_labels(tmp_path_factory, rows, header):
    from advkit.data import read_table, to_examples

    path = tmp_path_factory.mktemp("rows") / "rows.tsv"
    head = "sentence\tlabel\n" if header else ""
    path.write_text(head + "".join(f"{t}\t{raw}\n" for t, _, raw in rows), encoding="utf-8")
    table = read_table(path, header=header)
    text, label = ("sentence", "label") if header else (0, 1)
    examples = to_examples(table, path, text, None, label, NAMES)
    assert [e.text for e in examples] == [t.strip() for t, _, _ in rows]
    assert [e.label for e in examples] == [y for _, y, _ in rows]
    assert [line for line, _ in table] == list(range(1 + header, len(rows) + 1 + header))


@FAST
@given(rows=labelled_rows(), fmt=st.sampled_from(["csv", "jsonl"]))
def test_csv_and_json_lines_round_trip_any_text(tmp_path_factory, rows, fmt):
    import csv
    import io

    from advkit.data import read_table, to_examples

    path = tmp_path_factory.mktemp("rows") / f"rows.{fmt}"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["sentence", "label"])
        writer.writerows([t, raw] for t, _, raw in rows)
        path.write_text(buf.getvalue(), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps({"sentence": t, "label": raw}, ensure_ascii=False) + "\n"
                                for t, _, raw in rows), encoding="utf-8")
    examples = to_examples(read_table(path, header=True), path, "sentence", None, "label", NAMES)
    assert [(e.text, e.label) for e in examples] == [(t.strip(), y) for t, y, _ in rows]


@FAST
@given(rows=labelled_rows(), bad=st.text("xyz?!ABC", min_size=1, max_size=5), at=st.integers(0, 11))
def test_an_unknown_label_names_its_line(tmp_path_factory, rows, bad, at):
    from advkit.data import read_table, to_examples

    at = at % len(rows)
    rows[at] = (rows[at][0], None, f" {bad} ")
    path = tmp_path_factory.mktemp("rows") / "rows.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{raw}\n" for t, _, raw in rows), encoding="utf-8")
    with pytest.raises(UserError) as e:
        to_examples(read_table(path, header=True), path, "sentence", None, "label", NAMES)
    assert f"{path}:{at + 2}:" in str(e.value) and bad in str(e.value) and "\n" not in str(e.value)


@FAST
@given(content=st.binary(max_size=200))
def test_any_bytes_load_or_give_one_line_user_error(tmp_path_factory, content):
    from advkit.data import load

    path = tmp_path_factory.mktemp("bytes") / "data.tsv"
    path.write_bytes(content)
    try:
        split = load(str(path), "train")
    except UserError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
    else:
        assert split.examples and all(e.text for e in split.examples)


# ---------------------------------------------------------------------------- piece segmentation


def titles(n: int) -> list[str]:
    lines = (SHARED_DATA / "thucnews" / "train.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[:n]]


@pytest.fixture(scope="module")
def segmenter(shared_data):
    """SentencePiece at build-piece-lm's --tiny size, trained on 400 news titles."""
    from advkit.attack_zh.piece_lm import PieceSegmenter, train_sentencepiece
    from advkit.attack_zh.config import BuildPieceLmConfig, TINY_PIECE_LM

    cfg = BuildPieceLmConfig(**{k: v for k, v in TINY_PIECE_LM.items() if k in ("vocab_size", "character_coverage")})
    return PieceSegmenter(train_sentencepiece(titles(400), cfg))


@FAST
@given(text=st.one_of(MIXED, ANY))
def test_pieces_join_back_to_the_text_and_sit_at_their_offsets(segmenter, text):
    surfaces, ids = segmenter.segment(text)
    assert "".join(surfaces) == text and len(ids) == len(surfaces)
    assert all(surfaces) and all(0 <= i < len(segmenter) for i in ids)
    offset = 0
    for s in surfaces:
        assert text[offset : offset + len(s)] == s
        offset += len(s)


@FAST
@given(text=MIXED, data=st.data())
def test_replacing_pieces_never_moves_the_others(segmenter, text, data):
    """The search rebuilds the text from its unit list; other units keep their text and order."""
    from advkit.attack_zh.search import _replace

    units, _ = segmenter.segment(text)
    assume(units)
    current = list(units)
    # The search substitutes only units with content (whitespace-only units are never candidates).
    changeable = [i for i, u in enumerate(units) if u.strip()]
    assume(changeable)
    changed = data.draw(st.lists(st.sampled_from(changeable), max_size=4, unique=True))
    for i in changed:
        current[i] = _replace(units[i], data.draw(st.text(CJK, min_size=1, max_size=3)))
    rebuilt = "".join(current)
    offset = 0
    for i, u in enumerate(current):
        assert rebuilt[offset : offset + len(u)] == u
        if i not in changed:
            assert u == units[i]
        else:  # the unit's own spaces stay around the substitute
            assert u.strip() and u[: len(u) - len(u.lstrip())] == units[i][: len(units[i]) - len(units[i].lstrip())]
        offset += len(u)
    assert offset == len(rebuilt)


@FAST
@given(text=st.one_of(MIXED, ANY))
def test_character_units_join_back_to_the_text(text):
    from advkit.hf import is_cjk
    from advkit.attack_zh.substitutes import split_chars

    units = split_chars(text)
    assert "".join(units) == text and all(units)
    assert all(len(u) == 1 for u in units if any(is_cjk(c) for c in u))


# ---------------------------------------------------------------------------- attack-zh on any text


@pytest.fixture(scope="module")
def victim(tiny_zh):
    from advkit import models
    from advkit.seeds import seed_everything

    seed_everything(0)  # the fresh head is the same every run
    model, tokenizer, _ = models.load_classifier(str(tiny_zh), num_labels=2)
    return Victim(model, tokenizer, max_length=48, batch_size=32)


@pytest.fixture(scope="module")
def generators(tiny_zh, segmenter):
    """The character masked LM on characters and on SentencePiece units, and the glyph list."""
    from advkit.attack_zh import substitutes

    chars = substitutes.load("chars", str(tiny_zh))

    class Pieces:  # SentencePiece units; candidates from the character LM, which reads any unit
        def segment(self, text):
            return segmenter.segment(text)[0]

        def candidates(self, units, i, k):
            return chars.candidates(units, i, k)

    pieces = Pieces()
    return {"chars": chars, "pieces": pieces, "glyph": substitutes.load("glyph", None)}


@SLOW
@given(text=st.one_of(MIXED, ANY, st.text(CJK, max_size=20)), name=st.sampled_from(["chars", "pieces", "glyph"]),
       text_b=st.one_of(st.none(), MIXED))
def test_attack_zh_search_never_crashes_on_any_unicode(victim, generators, text, name, text_b):
    from advkit.hf import cjk_only
    from advkit.attack_zh.search import greedy_attack

    gen = generators[name]
    label = int(victim.predict_proba([text], [text_b] if text_b is not None else None).argmax())
    r = greedy_attack(text, label, victim, gen, text_b=text_b, top_k=4, max_queries=25)
    assert r["status"] in ("success", "failed") and r["queries"] <= 25
    assert "".join(r["units"]) == text
    rebuilt = list(r["units"])
    for c in r["changed"]:
        assert rebuilt[c["position"]] == c["original"] and cjk_only(c["substitute"].strip())
        rebuilt[c["position"]] = c["substitute"]
    assert "".join(rebuilt) == r["adversarial"]
    json.dumps(r, ensure_ascii=False)
