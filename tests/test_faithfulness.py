"""Faithfulness by construction (hypothesis): whatever the proposers and the judge want, the
output differs from the input only inside accepted, whole-word edits, protected tokens never
change and nothing is glued to them, and no sentence or line is dropped or doubled.

The adversaries: a judge that accepts every candidate it is shown (a stub LM whose gain is
huge), and a seq2seq "model" whose decodes delete, duplicate, rewrite and insert next to the
protected tokens."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restorer.infer import Restorer
from restorer.infer.decoded import Decoded
from restorer.infer.guard import GuardConfig
from restorer.infer.judge import Judge, JudgeConfig
from restorer.infer.pipeline import JudgeSpec, JudgeTier

SPUN = [
    "The firm stated final week that youngsters had been glad.",
    "Folks have to discover out what makes their well being so vital.",
    "In accordance with the Wall Road Journal, the Supreme Courtroom dominated on the case.",
    "She pointed out that the agency would possibly expand the programme.",
    "Critics, however, argue that the cash may be higher spent on trainers.",
]
PROTECTED = [
    "firm@example.com", "https://example.com/firm/said", "www.vital.org", "@firm_news", "#FolksFirst",
    "3,500", "12.5%", "$4.99", "£1.2bn", "5 March 2024", "10:30", "/usr/bin/firm", "`pip install firm`",
    "“the firm stated”", '"final week"', "snake_case_name", "camelCaseName", "Zyxqor",
]  # fmt: skip
GAPS = [" ", "  ", "\t", " — ", ", ", "; "]
WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


class GreedyScorer:
    """An LM that loves every edit: the judge accepts whatever the guard lets through."""

    def gains(self, bases, variants, window=None):
        return [[100.0] * len(vs) for vs in variants]

    gains_naive = gains
    first_gains = gains

    def clear(self) -> None:
        pass


def _adversarial_decode(s: str, rng: random.Random) -> str:
    out = s
    for tok in PROTECTED:
        if tok in out:
            op = rng.choice(["delete", "double", "glue", "rewrite", "keep"])
            if op == "delete":
                out = out.replace(tok, "", 1)
            elif op == "double":
                out = out.replace(tok, tok + " " + tok, 1)
            elif op == "glue":
                out = out.replace(tok, tok + ".com", 1)
            elif op == "rewrite":
                out = out.replace(tok, tok.replace("firm", "company").replace("1", "7").replace("Z", "Q"), 1)
    out = out.replace("stated", "said").replace("final", "last")
    return out


class AdversarialRestorer(Restorer):
    def __init__(self, tier: JudgeTier, seed: int) -> None:
        super().__init__(None, None, judge=tier)
        self.rng = random.Random(seed)

    def decode(self, sentences):  # the seq2seq tier's decodes, made hostile
        return [Decoded(_adversarial_decode(s, self.rng)) if s.strip() else Decoded(s) for s in sentences]


@pytest.fixture(scope="module")
def tier() -> JudgeTier:
    t = JudgeTier(None, JudgeSpec(proposers=["tables", "thesaurus", "seq2seq"]))
    t.judge = Judge(GreedyScorer(), JudgeConfig(keep=0, rounds=2))
    return t


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        parts = []
        for _ in range(draw(st.integers(1, 4))):
            parts.append(draw(st.sampled_from(SPUN)))
            if draw(st.booleans()):
                s = parts[-1]
                words = s.split(" ")
                k = draw(st.integers(0, len(words)))
                words.insert(k, draw(st.sampled_from(PROTECTED)))
                parts[-1] = " ".join(words)
        indent = draw(st.sampled_from(["", "  ", "\t"]))
        lines.append(indent + draw(st.sampled_from(GAPS)).join(parts) + draw(st.sampled_from(["", " ", "  "])))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "   ", "naïve café ☕ 🙂"])))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents(), seed=st.integers(0, 10_000))
def test_output_differs_only_inside_accepted_whole_word_edits(tier: JudgeTier, doc: str, seed: int) -> None:
    r = AdversarialRestorer(tier, seed)
    exp = r.explain(doc)
    # rebuild the output from the input and the accepted edits alone
    out, pos = [], 0
    for e in sorted(exp.edits, key=lambda e: e.start):
        assert e.start >= pos, "accepted edits never overlap"
        assert doc[e.start : e.end] == e.original
        # whole words: an edit never starts or ends inside a word
        assert e.start == 0 or not (doc[e.start - 1].isalnum() and doc[e.start].isalnum())
        assert e.end == len(doc) or not (doc[e.end - 1].isalnum() and doc[e.end].isalnum())
        out += [doc[pos : e.start], e.replacement]
        pos = e.end
    assert "".join([*out, doc[pos:]]) == exp.text
    # protected tokens survive, each as often as it was there, and nothing is glued on
    for tok in PROTECTED:
        assert exp.text.count(tok) == doc.count(tok), tok
        assert exp.text.count(tok + ".com") == doc.count(tok + ".com")
    # lines: same number, same blank lines, same indentation
    a, b = doc.split("\n"), exp.text.split("\n")
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.strip() == "") == (y.strip() == "")
        assert x[: len(x) - len(x.lstrip())] == y[: len(y) - len(y.lstrip())]
    # the adversary did get its way where nothing is protected: the judge path is live
    assert exp.edits or not any(w in doc for w in ("stated", "final"))


def test_clean_text_with_protected_tokens_only_changes_outside_them(tier: JudgeTier) -> None:
    r = AdversarialRestorer(tier, 0)
    line = '\t“Quotes” — dashes & ampersands survive: naïve café, 3,500 km, e-mail@example.com.'
    out = r.restore(line)
    assert "“Quotes”" in out and "e-mail@example.com." in out and ".com.com" not in out
    assert out.startswith("\t“Quotes” — ")


def test_guard_off_still_keeps_every_byte_outside_the_edits(tier: JudgeTier) -> None:
    r = AdversarialRestorer(tier, 1)
    r.guard = GuardConfig(enabled=False)
    doc = "  The firm stated final week.\n\nFolks agreed."
    exp = r.explain(doc)
    assert exp.text.startswith("  ") and "\n\n" in exp.text
