"""The judge: choose among proposed edits with a pretrained causal LM.

For each sentence the judge scores the sentence with and without each candidate edit. A
candidate's *net* is its LM gain (nats) minus its cost: a change margin plus a prior that
depends on where the candidate came from (an exact table row costs less than the tenth
synonym of a thesaurus entry), more for a sentence's first word, and less when the seq2seq
model's prior (``restorer.infer.seq2seq_prior``) vouches for the edit. The search over a
sentence's edits is greedy and joint:

1. **Pre-filter.** The base pass gives, for free, how much likelier each candidate's first
   changed token is than the sentence's own token there. Only the ``keep`` best candidates
   per sentence by that signal (minus their cost) are scored in full; the seq2seq model's
   edits always are.
2. **Score** the survivors: the LM log-probability of the sentence with the edit, minus that
   of the sentence without it, over the tokens from the change to ``window`` tokens past it
   (prefix KV reuse: ``restorer.infer.lm``).
3. **Accept** the best non-overlapping candidates with a positive net, all at once.
4. **Re-check** (``rounds`` > 1): against the sentence with the accepted edits, undo any
   edit whose net is no longer positive and accept further candidates that now pay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from restorer.common import WORD_RE, settings_from_dict
from restorer.infer.proposals import Candidate

_OPENERS = " \t\n\"'“‘«([-—–*•"  # what may stand before a sentence's first word


@dataclass
class JudgeConfig:
    """Costs (nats) and the search of the LM judge; defaults chosen on our valid split."""

    margin: float = 5.0  # every edit must raise the sentence's log-probability by this much
    # ... less its priors (the evidence, the seq2seq prior and agreement), but never by less than
    # this (None: no floor): an edit the LM finds no likelier than the original is the priors' alone.
    # Off: on the valid split a floor of 0 took clean_changed from 0.0040 to 0.0027 and cost 0.025
    # repaired on autoblog (docs/judge.md)
    cost_floor: float | None = None
    # ... and a style's one-word edits (a word for a word: clean text is full of them) never by less
    # than this (None: no floor); its phrase rows keep their own calibration. Off: on valid, with
    # the tortured_style package, 0 took clean_changed from 0.0047 to 0.0043 and cost 0.027 of the
    # new style's repairs; 2, to 0.0041 for 0.136 (docs/finetuning.md)
    style_word_floor: float | None = None
    table_cost: float = 0.0  # extra cost of an exact table row (spinner or style dictionary)
    thesaurus_cost: float = 2.0  # extra cost of a thesaurus inverse ...
    rank_cost: float = 0.25  # ... plus this per rank of the synonym in its head's list
    seq2seq_cost: float = 3.0  # extra cost of an edit proposed only by the seq2seq model
    agree_bonus: float = 3.0  # less cost when the seq2seq model proposed the same edit
    keep: int = 16  # candidates per sentence scored in full after the pre-filter (0: all)
    rounds: int = 2
    window: int | None = 6  # score a variant up to this many tokens past its change (None: all)
    recheck_within: float = 2.0  # the re-check also re-scores candidates this close to paying
    first_word_cost: float = 2.0  # extra cost of a one-word edit of a sentence's first word (no left context)
    # the seq2seq prior (restorer.infer.seq2seq_prior), when the tier has one: an edit's cost
    # falls by prior_offset + prior_weight * (its prior clipped to [prior_min, prior_max])
    prior_weight: float = 1.0  # 0: off
    prior_min: float = -1.0
    prior_max: float = 5.0
    prior_offset: float = 0.0
    # a style's evidence (restorer.infer.styles): the log-odds, measured on its example pairs, that
    # a spun word or phrase stands for the original; an edit's cost falls by style_weight times it,
    # clipped to [style_min, style_max]
    style_weight: float = 2.0  # chosen on 200 pairs held out of the tortured_style train split (docs/finetuning.md)
    style_min: float = -2.0
    style_max: float = 8.0
    # the base evidence (restorer.infer.proposals.relative_evidence), when the model directory has
    # one: a table or thesaurus edit's cost falls by evidence_weight times it, clipped
    evidence_weight: float = 0.0
    evidence_min: float = -4.0
    evidence_max: float = 4.0
    # the evidence was measured on spun text; a clean sentence has no spinner. An edit that would be
    # the sentence's only one gets this weight instead (None: evidence_weight), so a lone common word
    # ("nationwide", "extra") is not taken for the spinner's on the evidence alone
    evidence_alone: float | None = None
    # extra cost of an edit that would be its sentence's only one: a spinner changes many words of
    # a sentence, a lone change of clean text is the judge's own mistake more often than a repair
    alone_cost: float = 0.0
    # ... and each of two edits that would be their sentence's only ones pays this much more
    pair_cost: float = 0.0
    # both rise by this much per word of the sentence over few_words: a spinner's edits come at a
    # rate per word, so one or two edits in a long sentence are likelier the judge's own mistakes
    # than in a short one (they never fall under it: short clean lines are edited no more eagerly)
    few_per_word: float = 0.0
    few_words: int = 20
    # a style's edits keep their own calibration (its evidence, measured on its own text: often
    # short phrases, where one edit is the rule) in inputs of at most this many words; in longer
    # ones they pay the alone and pair costs like the base's (None: never). With
    # style_evidence_alone, a lone one there also loses its evidence, as evidence_alone does.
    # Shipped: 8 words, with style_evidence_alone (restorer.json). On valid, with the tortured
    # style trained for 25 minutes: clean_changed 0.0054 -> 0.0042, autoblog 0.519 -> 0.520, the
    # style's held-out phrases unchanged (docs/finetuning.md)
    style_alone_words: int | None = None
    style_evidence_alone: bool = False
    # the document gate: a spinner spins a whole document. A document of at least document_words
    # words whose accepted edits restore less than document_spin of its words looks clean, and
    # each of its edits pays document_cost more (a style's edits keep their own calibration)
    document_spin: float = 0.0  # 0: off
    document_words: int = 100
    document_cost: float = 6.0

    def cost(self, c: Candidate, sentence: str | None = None) -> float:
        """The nats an edit's gain must beat; ``sentence`` (the one ``c`` is in) adds the
        first-word cost where it applies: a one-word swap there has no left context to hold
        the LM's taste for common words ("Breakfast" -> "Lunch"); a phrase row ("In accordance
        with" -> "According to") carries its own evidence."""
        first = sentence is not None and " " not in c.original.strip() and not sentence[: c.start].strip(_OPENERS)
        extra = self.first_word_cost if first else 0.0
        extra += {
            "table": self.table_cost,
            "style": self.table_cost,
            "seq2seq": self.seq2seq_cost,
            "thesaurus": self.thesaurus_cost + self.rank_cost * c.rank,
        }.get(c.source, self.thesaurus_cost)
        if c.evidence and c.source == "style":
            extra -= self.style_weight * self._clip_style(c.evidence)
        elif c.evidence:
            extra -= self.evidence_weight * self._clip_evidence(c.evidence)
        return self.margin + extra - (self.agree_bonus if c.agree else 0.0)

    def _clip_evidence(self, e: float) -> float:
        return min(self.evidence_max, max(self.evidence_min, e))

    def _clip_style(self, e: float) -> float:
        return min(self.style_max, max(self.style_min, e))

    def alone_extra(self, c: Candidate, edits: int = 1, words: int | None = None) -> float:
        """What an edit's cost rises by when it would be one of its sentence's only ``edits``
        edits (1 or 2; a style's edits keep their own calibration, its evidence, in inputs of up
        to ``style_alone_words`` words), in a sentence of ``words`` words (None: ``few_words``)."""
        style = c.source == "style"
        if edits > 2 or (style and (self.style_alone_words is None or words is None or words <= self.style_alone_words)):
            return 0.0
        base = self.pair_cost if edits == 2 else self.alone_cost
        if words is not None and self.few_per_word:
            base += self.few_per_word * max(0, words - self.few_words)
        if edits == 2 or c.evidence <= 0:
            return base
        if style:
            return base + (self.style_weight * self._clip_style(c.evidence) if self.style_evidence_alone else 0.0)
        if self.evidence_alone is None:
            return base
        return base + (self.evidence_weight - self.evidence_alone) * self._clip_evidence(c.evidence)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> JudgeConfig:
        return settings_from_dict(cls, d, "judge")


@dataclass
class Verdict:
    """The judge's decision on one candidate."""

    candidate: Candidate
    gain: float | None  # LM gain in nats (None: not scored in full)
    cost: float  # the seq2seq prior's share (below) already taken off
    accepted: bool = False
    reason: str = ""
    prior: float | None = None  # what the seq2seq prior took off the cost (None: no prior)

    @property
    def net(self) -> float:
        return -math.inf if self.gain is None else self.gain - self.cost

    @property
    def confidence(self) -> float:
        n = self.net
        return 0.0 if n == -math.inf else 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, n))))


@dataclass
class Judged:
    """A sentence after the judge: the chosen edits and every verdict."""

    sentence: str
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def accepted(self) -> list[Candidate]:
        return [v.candidate for v in self.verdicts if v.accepted]


def apply(sentence: str, edits: Sequence[Candidate]) -> str:
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        out.append(sentence[pos : e.start])
        out.append(e.replacement)
        pos = e.end
    out.append(sentence[pos:])
    return "".join(out)


class Judge:
    """Chooses edits for many sentences at once with an ``LMScorer``."""

    def __init__(self, scorer: Any, config: JudgeConfig | None = None, naive: bool = False,
                 prior: Any = None) -> None:  # fmt: skip
        self.scorer = scorer
        self.cfg = config or JudgeConfig()
        self.naive = naive  # score every variant in full (the reference for the fast path)
        # restorer.infer.seq2seq_prior.Seq2SeqPrior, a sequence of them, or None. The first is the
        # base model's, for every candidate; the others (a style's fine-tuned copy) vouch only for
        # the style's candidates (Candidate.style), which take the highest: the base's candidates
        # cost what they cost without the style, and the style's copy cannot veto its own rows
        self.priors = [p for p in (prior if isinstance(prior, list | tuple) else [prior]) if p is not None]

    @property
    def prior(self) -> Any:
        """The first (the base model's) prior, or None."""
        return self.priors[0] if self.priors else None

    def _apply_prior(self, out: list[Judged], todo: list[int], variants: list[list[str]]) -> None:
        cfg = self.cfg
        if not self.priors or not cfg.prior_weight:
            return
        sents = [out[i].sentence for i in todo]
        priors = self.priors[0].first_gains(sents, variants)
        styled = [[k for k, v in enumerate(out[i].verdicts) if v.candidate.style] for i in todo]
        if len(self.priors) > 1 and any(styled):
            # the style models score only the style's candidates
            mine = [[vs[k] for k in ks] for vs, ks in zip(variants, styled, strict=True)]
            for p in self.priors[1:]:
                for row, ks, got in zip(priors, styled, p.first_gains(sents, mine), strict=True):
                    for k, g in zip(ks, got, strict=True):
                        row[k] = max(row[k], g)
        for i, ps in zip(todo, priors, strict=True):
            for v, p in zip(out[i].verdicts, ps, strict=True):
                v.prior = cfg.prior_offset + cfg.prior_weight * min(cfg.prior_max, max(cfg.prior_min, p))
                v.cost -= v.prior

    def judge(self, sentences: Sequence[str], candidates: Sequence[Sequence[Candidate]]) -> list[Judged]:
        cfg = self.cfg
        out = [Judged(s, [Verdict(c, None, cfg.cost(c, s)) for c in cs]) for s, cs in zip(sentences, candidates, strict=True)]
        todo = [i for i, j in enumerate(out) if j.verdicts]
        if not todo:
            return out
        # every candidate's variant, built once for the prior and the pre-filter
        variants = [[apply(out[i].sentence, [v.candidate]) for v in out[i].verdicts] for i in todo]
        self._apply_prior(out, todo, variants)
        if cfg.cost_floor is not None or cfg.style_word_floor is not None:
            for i in todo:
                for v in out[i].verdicts:
                    floor = self._floor(v.candidate)
                    if floor is not None:
                        v.cost = max(v.cost, floor)
        # 1. pre-filter on the first changed token (free from the base pass)
        survivors: dict[int, list[Verdict]] = {}
        if cfg.keep and any(len(out[i].verdicts) > cfg.keep for i in todo):
            firsts = self.scorer.first_gains([out[i].sentence for i in todo], variants)
            for i, fg in zip(todo, firsts, strict=True):
                # the seq2seq model's own edits always go on to be scored
                ranked = sorted(zip(out[i].verdicts, fg, strict=True),
                                key=lambda x: (not x[0].candidate.agree and x[0].candidate.source != "seq2seq",
                                               -(x[1] - x[0].cost)))  # fmt: skip
                survivors[i] = [v for v, _ in ranked[: cfg.keep]]
                for v, _ in ranked[cfg.keep :]:
                    v.reason = "pre-filter"
        else:
            survivors = {i: list(out[i].verdicts) for i in todo}
        # 2-3. score the survivors against the input; accept the best that do not overlap
        self._score(out, survivors, {i: [] for i in todo})
        for i in todo:
            self._accept(survivors[i])
        # 4. re-check against the sentence with its accepted edits
        for _ in range(cfg.rounds - 1):
            check = {i: vs for i in todo if (vs := self._to_recheck(survivors[i]))}
            if not check:
                break
            base_edits = {i: [v.candidate for v in check[i] if v.accepted] for i in check}
            self._score(out, check, base_edits)
            changed = False
            for i in check:
                changed |= self._accept(check[i], recheck=True)
            if not changed:
                break
        # 5. a sentence's only edit pays alone_cost more, without the evidence's full weight
        # (evidence_alone); each of its only two pays pair_cost more. The weakest goes first, and
        # the rest are weighed again as fewer
        for i in todo:
            self._few_edits(out[i].verdicts, len(WORD_RE.findall(out[i].sentence)))
        for j in out:
            for v in j.verdicts:
                if not v.accepted and not v.reason:
                    v.reason = "overlap" if v.net > 0 else "below cost"
        return out

    def _score(self, out: list[Judged], which: dict[int, list[Verdict]], applied: dict[int, list[Candidate]]) -> None:
        """Each verdict's gain against the sentence with ``applied`` edits: for an applied
        edit, the gain of keeping it over undoing it; for another, the gain of adding it."""
        bases, variants, slots = [], [], []
        for i, vs in which.items():
            edits = applied[i]
            base = apply(out[i].sentence, edits)
            row, keep = [], []
            for v in vs:
                c = v.candidate
                if v.accepted:
                    row.append(apply(out[i].sentence, [e for e in edits if e is not c]))
                    keep.append((v, -1.0))
                elif not any(c.overlaps(e) for e in edits):
                    row.append(apply(out[i].sentence, [*edits, c]))
                    keep.append((v, 1.0))
            bases.append(base)
            variants.append(row)
            slots.append(keep)
        fn = self.scorer.gains_naive if self.naive else self.scorer.gains
        for keep, gains in zip(slots, fn(bases, variants, self.cfg.window), strict=True):
            for (v, sign), g in zip(keep, gains, strict=True):
                v.gain = sign * g

    def _floor(self, c: Candidate) -> float | None:
        if c.source != "style":
            return self.cfg.cost_floor
        return self.cfg.style_word_floor if len(WORD_RE.findall(c.original)) == 1 else None

    def gate_document(self, judged: Sequence[Judged]) -> None:
        """The document gate (``JudgeConfig.document_spin``) over the sentences of one document,
        after each was judged: spun documents restore many of their words, clean ones hardly any
        (valid split, whole documents: every clean one under 1.3%, every spun one over 3.7%)."""
        cfg = self.cfg
        if not cfg.document_spin:
            return
        words = sum(len(WORD_RE.findall(j.sentence)) for j in judged)
        if words < max(1, cfg.document_words):
            return
        acc = [v for j in judged for v in j.verdicts if v.accepted]
        changed = sum(max(1, len(WORD_RE.findall(v.candidate.original))) for v in acc)
        if changed / words >= cfg.document_spin:
            return
        for v in acc:
            if v.candidate.source == "style":
                continue
            v.cost += cfg.document_cost
            if v.net <= 0:
                v.accepted = False
                v.reason = f"document looks clean: {changed} of its {words} words edited"

    def _to_recheck(self, verdicts: list[Verdict]) -> list[Verdict]:
        """The verdicts of a sentence to weigh again in the context of its accepted edits: those
        edits and the candidates close to paying. Nothing when there is nothing to learn: no
        accepted edit, or one whose only company overlaps it (its gain against the sentence
        without it is the one already measured, and nothing else can be scored beside it)."""
        acc = [v.candidate for v in verdicts if v.accepted]
        check = [v for v in verdicts if v.accepted or v.net > -self.cfg.recheck_within]
        if not acc or (len(acc) == 1 and all(v.accepted or v.candidate.overlaps(acc[0]) for v in check)):
            return []
        return check

    def _few_edits(self, verdicts: list[Verdict], words: int | None = None) -> None:
        while True:
            acc = [v for v in verdicts if v.accepted]
            if not acc or len(acc) > 2:
                return
            extra = [self.cfg.alone_extra(v.candidate, len(acc), words) for v in acc]
            weakest = min(range(len(acc)), key=lambda k: acc[k].net - extra[k])
            if acc[weakest].net - extra[weakest] > 0:
                for v, x in zip(acc, extra, strict=True):
                    v.cost += x
                return
            v = acc[weakest]
            v.cost += extra[weakest]
            v.accepted = False
            v.reason = f"{'alone' if len(acc) == 1 else 'pair'}: below the cost of so few edits"

    @staticmethod
    def _accept(verdicts: list[Verdict], recheck: bool = False) -> bool:
        changed = False
        if recheck:
            for v in verdicts:
                if v.accepted and v.net <= 0:
                    v.accepted, v.reason, changed = False, "undone in context", True
        taken = [v.candidate for v in verdicts if v.accepted]
        for v in sorted(verdicts, key=lambda v: -v.net):
            if v.accepted or v.net <= 0 or v.reason == "pre-filter":
                continue
            if any(v.candidate.overlaps(t) for t in taken):
                continue
            v.accepted, v.reason, changed = True, "", True
            taken.append(v.candidate)
        return changed
