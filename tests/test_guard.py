"""The faithfulness guard, decoding helpers and long-sentence splitting (no model needed)."""

from __future__ import annotations

import pytest

from restorer.infer.decoded import Decoded
from restorer.infer.guard import GuardConfig, align, apply_edits, guard_sentence, spin_score
from restorer.text import document_spans, splice, split_long


def never_a_name(word: str, first: bool) -> bool:
    return False


def decoded(text: str, probs: dict[str, float] | None = None) -> Decoded:
    """A decode whose tokens are its words, with chosen probabilities (default 0.99)."""
    import re

    probs = probs or {}
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    return Decoded(text, list(range(len(spans))), [probs.get(text[a:b], 0.99) for a, b in spans], spans)


SRC = "The firm stated final week that youngsters  were 1 of 5 people in Oslo."
OUT = "The company said last week that children were one of 5 people in Oslo."


def test_align_spans_point_into_the_source_and_apply_back() -> None:
    edits = align(SRC, OUT)
    assert [(e.original, e.replacement) for e in edits] == [
        ("firm", "company"),
        ("stated", "said"),
        ("final", "last"),
        ("youngsters", "children"),
        ("1", "one"),
    ]
    for e in edits:
        assert SRC[e.start : e.end] == e.original
    # the input's double space survives: only the edits are spliced in
    assert apply_edits(SRC, edits) == OUT.replace("children were", "children  were")


@pytest.mark.parametrize(
    ("src", "out"),
    [("a b c", "a x b c"), ("a b c", "a b c d"), ("a b c", "a c"), ("a b c", "b c"), ("a b c.", "a b"), ("x", "")],
)
def test_insertions_and_deletions_reproduce_the_output(src: str, out: str) -> None:
    assert apply_edits(src, align(src, out)) == out


def test_guard_off_is_the_raw_decode() -> None:
    g = guard_sentence(SRC, decoded("anything at all"), GuardConfig(enabled=False))
    assert g.text == "anything at all"


def test_low_confidence_edits_fall_back_to_the_input() -> None:
    cfg = GuardConfig(min_confidence=0.5)
    g = guard_sentence(SRC, decoded(OUT, {"children": 0.3}), cfg, is_name=never_a_name)
    assert "youngsters" in g.text and "company said last" in g.text
    [rej] = [e for e in g.edits if not e.accepted]
    assert rej.reason == "low confidence" and rej.original == "youngsters"


def test_rewrites_beyond_a_spinner_are_rejected() -> None:
    src = "It can only proceed along its route step by step."
    out = "It can only continue continue continue continue continue continue continue."
    g = guard_sentence(src, decoded(out), GuardConfig(), is_name=never_a_name)
    assert g.text == src
    assert {e.reason for e in g.edits} <= {"rewrites too much", "sentence rewritten"}


def test_numbers_urls_and_names_are_protected() -> None:
    cfg = GuardConfig(min_confidence=0.0)
    assert guard_sentence("Prices rose 12 percent.", decoded("Prices rose 13 percent."), cfg).text == (
        "Prices rose 12 percent."
    )
    # a small digit back to a number word is what spinners undo: allowed
    assert guard_sentence("He was 1 of them.", decoded("He was one of them."), cfg, never_a_name).text == (
        "He was one of them."
    )
    src = "See https://example.com/a_b or mail jo@example.org today."
    out = "See https://example.com/ab or mail jo@example.com now."
    assert guard_sentence(src, decoded(out), cfg, never_a_name).text == src.replace("today", "now")
    g = guard_sentence("They met in Oslo yesterday.", decoded("They met in Paris yesterday."), cfg)
    assert g.text == "They met in Oslo yesterday." and g.edits[0].reason == "name"


def test_spin_score_counts_restored_words() -> None:
    g = guard_sentence(SRC, decoded(OUT), GuardConfig(min_confidence=0.0), is_name=never_a_name)
    assert spin_score([g]) == pytest.approx(5 / g.n_words)  # 5 words restored
    clean = guard_sentence("A clean sentence.", decoded("A clean sentence."))
    assert clean.edits == [] and clean.spin_score == 0.0


def test_guard_config_validates() -> None:
    with pytest.raises(ValueError):
        GuardConfig(min_confidence=1.5)
    with pytest.raises(ValueError, match="unknown guard setting"):
        GuardConfig.from_dict({"min_conf": 0.2})


def test_decoded_min_prob_covers_overlapping_tokens() -> None:
    d = Decoded("ab cd ef", [1, 2, 3], [0.9, 0.2, 0.8], [(0, 2), (3, 5), (6, 8)])
    assert d.min_prob(3, 5) == 0.2
    assert d.min_prob(0, 8) == 0.2
    assert d.min_prob(6, 6) == 0.8  # a deletion takes the next token's decision


def test_split_long_cuts_at_safe_points_and_keeps_every_character() -> None:
    s = "This is a long sentence, which goes on and on; it has clauses: many of them, and more words."
    spans = split_long(s, lambda x: len(x) > 40)
    assert len(spans) > 1
    assert all(len(s[a:b]) <= 40 for a, b in spans)
    # the text between pieces is whitespace only, so joining restores the sentence
    assert "".join(s[a:b] + s[b : spans[i + 1][0]] if i + 1 < len(spans) else s[a:b] for i, (a, b) in enumerate(spans)) == s
    assert [b - a for a, b in split_long("x" * 100, lambda x: len(x) > 40)] == [25, 25, 25, 25]


def test_document_spans_and_splice_keep_the_layout() -> None:
    t = "Hello there. How are you?\n\n  Indented line.\r\nLast"
    spans = document_spans(t)
    assert [t[a:b] for a, b in spans] == ["Hello there.", "How are you?", "Indented line.", "Last"]
    assert splice(t, spans, [t[a:b].upper() for a, b in spans]) == "HELLO THERE. HOW ARE YOU?\n\n  INDENTED LINE.\r\nLAST"


def test_repeated_words_are_not_inserted() -> None:
    cfg = GuardConfig(min_confidence=0.0)
    assert guard_sentence("The end.", decoded("The end. The end."), cfg, never_a_name).text == "The end."
    assert guard_sentence("We went home.", decoded("We went went home."), cfg, never_a_name).text == "We went home."
    # a new word is still inserted
    assert guard_sentence("He said it.", decoded("He said that it."), cfg, never_a_name).text == "He said that it."


def test_punctuation_is_not_added_or_dropped() -> None:
    cfg = GuardConfig(min_confidence=0.0)
    title = "Local Schools Try a New Approach to Reading"
    assert guard_sentence(title, decoded(title + "."), cfg, never_a_name).text == title
    assert guard_sentence("Yes, he did.", decoded("Yes he did."), cfg, never_a_name).text == "Yes, he did."


def test_small_ordinals_turn_back_into_words() -> None:
    cfg = GuardConfig(min_confidence=0.0)
    assert guard_sentence("In the 2nd grade.", decoded("In the second grade."), cfg, never_a_name).text == (
        "In the second grade."
    )
    assert guard_sentence("In the 2nd grade.", decoded("In the 3rd grade."), cfg, never_a_name).text == "In the 2nd grade."


def test_a_word_that_repeats_its_own_ending_is_rejected() -> None:
    src = "A New Approach to Reading"
    g = guard_sentence(src, decoded("A New Approach to Readinging."), GuardConfig(min_confidence=0.0))
    assert g.text == src and [e.reason for e in g.edits] == ["repetition"]
    # an inflection does not repeat the word's end: it stays an edit the guard may accept
    g = guard_sentence("They walk home.", decoded("They walked home."), GuardConfig(min_confidence=0.0))
    assert g.text == "They walked home."
