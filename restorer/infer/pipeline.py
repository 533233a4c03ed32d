"""The judge tier of ``Restorer``: propose, judge, guard.

A model directory names its judge in ``restorer.json``::

    {"judge": {"lm": "smollm2-135m", "proposers": ["tables", "thesaurus", "seq2seq"],
               "judge": {...JudgeConfig...}, "scorer": {...LMScorerConfig...},
               "proposals": {...ProposalConfig...}}}

``lm`` is a known base LM (fetched and cached on first use: ``restorer.model.base_lm``) or a
directory holding a transformers causal LM. Without a ``judge`` section a model directory
restores with its seq2seq model alone, as before.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from restorer.common import settings_from_dict
from restorer.infer.decoded import Decoded
from restorer.infer.guard import (
    Edit,
    GuardConfig,
    Guarded,
    _protected_spans,
    _reject,
    align,
    looks_like_name,
    number_spans,
)
from restorer.infer.judge import Judge, JudgeConfig, Judged, Verdict, apply
from restorer.infer.lm import LMScorer, LMScorerConfig, bound_heap, resolve_dtype
from restorer.infer.proposals import WORD_RE, Candidate, ProposalConfig, Proposer
from restorer.infer.styles import StylePackage, StylePackageError, load_style_package, read_evidence_counts
from restorer.spin.lexicon import Lexicon

RESTORER_JSON = "restorer.json"
PROPOSERS = ("tables", "thesaurus", "seq2seq")


class JudgeSpecError(ValueError):
    """A ``restorer.json`` judge section that cannot be used."""


@dataclass
class JudgeSpec:
    """The ``judge`` section of a model directory's ``restorer.json``."""

    lm: str = "smollm2-135m"
    proposers: list[str] = field(default_factory=lambda: list(PROPOSERS))
    judge: dict[str, Any] = field(default_factory=dict)
    scorer: dict[str, Any] = field(default_factory=dict)
    proposals: dict[str, Any] = field(default_factory=dict)
    # in the model directory: more rows of the base spinner, mined from its pairs (a style YAML or
    # package directory whose rows join the tables), and every base row's evidence on those pairs
    tables: str = ""
    evidence: str = ""

    def __post_init__(self) -> None:
        bad = [p for p in self.proposers if p not in PROPOSERS]
        if bad:
            raise JudgeSpecError(f"unknown proposer(s) {bad}; use {', '.join(PROPOSERS)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JudgeSpec:
        try:
            spec = settings_from_dict(cls, d, f"{RESTORER_JSON} judge")
            # the sections, checked now rather than on first use
            JudgeConfig.from_dict(spec.judge)
            settings_from_dict(LMScorerConfig, spec.scorer, "judge scorer")
            settings_from_dict(ProposalConfig, spec.proposals, "judge proposals")
        except (TypeError, ValueError) as exc:
            raise JudgeSpecError(str(exc)) from None
        return spec

    def to_dict(self) -> dict[str, Any]:
        d = {"lm": self.lm, "proposers": self.proposers, "judge": self.judge,
             "scorer": self.scorer, "proposals": self.proposals}  # fmt: skip
        return {**d, **{k: v for k, v in (("tables", self.tables), ("evidence", self.evidence)) if v}}


def read_judge_spec(model_dir: str | Path) -> JudgeSpec | None:
    """The judge a model directory names, or None."""
    p = Path(model_dir) / RESTORER_JSON
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise JudgeSpecError(f"cannot read {p}: {exc}") from None
    section = data.get("judge")
    return None if section is None else JudgeSpec.from_dict(section)


def read_base_rows(spec: JudgeSpec, model_dir: Path) -> tuple[list[Lexicon], dict[tuple[str, str], tuple[int, int]] | None]:
    """The mined tables and the evidence file ``spec`` names in ``model_dir``."""
    tables, evidence = [], None
    try:
        if spec.tables:
            lex = load_style_package(model_dir / spec.tables).lexicon
            tables = [lex] if lex is not None else []
        if spec.evidence:
            evidence = read_evidence_counts(model_dir / spec.evidence)
    except (OSError, StylePackageError) as exc:
        raise JudgeSpecError(f"{model_dir / RESTORER_JSON}: cannot read the base rows it names: {exc}") from None
    return tables, evidence


class JudgeTier:
    """Proposals from the inverted tables (and the seq2seq model's edits), chosen by an LM."""

    # sentences judged together: the LM's keys and values of every sentence of a chunk are held
    # until the chunk is done; 16 rather than 32 took 150 MB off the peak (fp32, 96 sentences:
    # 1,419 against 1,567 MB) with the same outputs
    CHUNK = 16

    def __init__(self, scorer: LMScorer, spec: JudgeSpec, chunk: int = CHUNK, prior: Any = None,
                 styles: Sequence[StylePackage] = (),
                 base_evidence: dict[tuple[str, str], tuple[int, int]] | None = None,
                 tables: Sequence[Lexicon] = ()) -> None:  # fmt: skip
        self.spec = spec
        self.scorer = scorer
        pcfg = settings_from_dict(ProposalConfig, {"tables": "tables" in spec.proposers,
                                                   "thesaurus": "thesaurus" in spec.proposers,
                                                   **spec.proposals}, "judge proposals")  # fmt: skip
        # a style's dictionary proposes next to the base tables, with the evidence of its example pairs
        self.styles = list(styles)
        self.proposer = Proposer(pcfg, [s.lexicon for s in styles if s.lexicon is not None],
                                 evidence={k: v for s in styles for k, v in s.evidence.items()},
                                 base_evidence=base_evidence, tables=tables)  # fmt: skip
        self.use_seq2seq = "seq2seq" in spec.proposers
        # the seq2seq model's prior (restorer.infer.seq2seq_prior) goes with its proposals
        self.judge = Judge(scorer, JudgeConfig.from_dict(spec.judge), prior=prior if self.use_seq2seq else None)
        self.chunk = chunk

    @classmethod
    def load(cls, spec: JudgeSpec, device: str = "cpu", seq2seq_dir: str | Path | None = None,
             styles: Sequence[StylePackage] = (), model_dir: str | Path | None = None) -> JudgeTier:  # fmt: skip
        """The tier ``spec`` names, its LM on ``device``; with ``seq2seq_dir`` (a transformers
        seq2seq model directory) and the ``seq2seq`` proposer, that model's prior as well; with
        ``styles``, their dictionaries' proposals too, and the prior of a style's own fine-tuned
        seq2seq model next to the base's; ``model_dir`` holds the spec's evidence file."""
        from restorer.model.base_lm import head_weight_fp32, lm_dir, load_lm
        from restorer.model.device import resolve_device

        bound_heap()  # before any thread allocates: see its docstring
        # read first: a bad file fails before the LM loads
        tables, evidence = read_base_rows(spec, Path(model_dir or seq2seq_dir or "."))
        cfg = settings_from_dict(LMScorerConfig, spec.scorer, "judge scorer")
        device = resolve_device(device)
        path = lm_dir(spec.lm)
        # load straight in the dtype the scorer runs in: an fp32 copy of the whole LM would
        # only be cast and dropped (0.5 GB of peak memory); the output layer, which stays fp32,
        # is read from the file as stored
        dtype = torch.float32 if cfg.quantize else resolve_dtype(cfg.dtype, torch.device(device).type)
        model, tok = load_lm(path, device=device, dtype=dtype)
        head = head_weight_fp32(path) if dtype != torch.float32 and cfg.head_fp32 else None
        priors = []
        if seq2seq_dir is not None and "seq2seq" in spec.proposers and JudgeConfig.from_dict(spec.judge).prior_weight:
            from restorer.infer.seq2seq_prior import Seq2SeqPrior

            # the base model's prior, then a style's fine-tuned copy's: an edit takes the higher
            for d in [seq2seq_dir, *(st.model_dir for st in styles if st.model_dir is not None)]:
                priors.append(Seq2SeqPrior.load(d, device))
        prior = [p for p in priors if p is not None] or None
        return cls(LMScorer(model, tok, cfg, head_weight=head), spec, prior=prior, styles=styles,
                   base_evidence=evidence, tables=tables)  # fmt: skip

    def candidates(self, sentence: str, decoded: Decoded | None, guard: GuardConfig,
                   extra: Sequence[Decoded | None] = ()) -> tuple[list[Candidate], list[Edit]]:  # fmt: skip
        """The sentence's candidates that may be judged, and those the guard refuses. ``decoded``:
        the base seq2seq model's decode; ``extra``: a style's fine-tuned copy's decodes, whose
        edits join as ``seq2seq`` candidates of the style. The base model's agreement lowers the
        cost of any table row; a style model's only that of its style's rows, so the base's
        candidates cost what they cost without the style."""
        cands = self.proposer.propose(sentence)
        at = {(c.start, c.end, c.replacement): k for k, c in enumerate(cands)}
        for style, d in [(False, decoded), *((True, x) for x in extra)]:
            if d is None or not d.text.strip() or d.text.strip() == sentence:
                continue
            for e in align(sentence, d.text, d):
                k = at.get((e.start, e.end, e.replacement))
                if k is not None:  # a seq2seq model agrees with a table row
                    if cands[k].source != "seq2seq" and (not style or cands[k].style):
                        cands[k] = replace(cands[k], agree=True)
                elif e.original.strip() and e.replacement.strip():
                    at[(e.start, e.end, e.replacement)] = len(cands)
                    cands.append(Candidate(e.start, e.end, e.original, e.replacement, "seq2seq", style=style))
        if not guard.enabled:
            return cands, []
        protected = _protected_spans(sentence) if guard.protect_code else []
        numbers = number_spans(sentence) if guard.protect_numbers else []
        ok, refused = [], []
        for c in cands:
            e = Edit(c.start, c.end, c.original, c.replacement, 1.0, source=c.source)
            reason = _reject(e, sentence, guard, protected, looks_like_name, numbers)
            loose = c.source in ("thesaurus", "seq2seq")
            if not reason and loose and len(WORD_RE.findall(c.replacement)) < len(WORD_RE.findall(c.original)):
                reason = "free deletion"  # only a table's phrase paraphrase may shorten a sentence
            if not reason and loose and _capitalised_inside(sentence, c):
                reason = "capitalised word"  # a name; spinners' swaps of names live in the tables
            if reason:
                e.accepted, e.reason = False, reason
                refused.append(e)
            else:
                ok.append(c)
        return ok, refused

    def explain(self, sentences: Sequence[str], decodes: Sequence[Decoded] | None,
                guard: GuardConfig, documents: Sequence[int] | None = None,
                extra: Sequence[Sequence[Decoded]] = ()) -> list[Guarded]:  # fmt: skip
        """Judge and guard stripped sentences. ``documents`` numbers the document each sentence
        belongs to, for the document gate (``JudgeConfig.document_spin``); None: each sentence
        is a document of its own. ``extra``: more decodes of every sentence, whose edits are
        proposed too (a style's fine-tuned seq2seq model)."""
        judged: list[Judged] = []
        refused: list[list[Edit]] = []
        for i in range(0, len(sentences), self.chunk):
            part = sentences[i : i + self.chunk]
            decs = decodes[i : i + self.chunk] if decodes is not None else [None] * len(part)
            more = [x[i : i + self.chunk] for x in extra]
            cands = []
            for k, (s, d) in enumerate(zip(part, decs, strict=True)):
                ok, no = self.candidates(s, d, guard, [x[k] for x in more]) if s.strip() else ([], [])
                cands.append(ok)
                refused.append(no)
            judged += self.judge.judge(part, cands)
            self.judge.scorer.clear()
            _release_memory()
        groups: dict[int, list[Judged]] = {}
        for k, j in enumerate(judged):
            groups.setdefault(k if documents is None else documents[k], []).append(j)
        for g in groups.values():
            self.judge.gate_document(g)
        out: list[Guarded] = []
        for s, j, no in zip(sentences, judged, refused, strict=True):
            edits = [_edit(v) for v in j.verdicts if v.accepted or v.gain is not None] + no
            edits.sort(key=lambda e: (e.start, e.end, not e.accepted))
            out.append(Guarded(apply(s, j.accepted), edits, len(WORD_RE.findall(s))))
        return out


def _release_memory() -> None:
    """Give the freed heap back to the system after a chunk (glibc): the judge's tensors come in
    ever-changing shapes, and without this the process's memory only grows with fragmentation
    (measured: peak 1.71 GB after 600 sentences in one call, against about 1.3 GB with it)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _capitalised_inside(sentence: str, c: Candidate) -> bool:
    """A capitalised word of the candidate's span that does not open the sentence (Ten Hag)."""
    for m in WORD_RE.finditer(c.original):
        w = m.group()
        if w[:1].isupper() and sentence[: c.start + m.start()].strip(" \"'“‘(["):
            return True
    return False


def _edit(v: Verdict) -> Edit:
    c = v.candidate
    reason = v.reason if not v.accepted else ""
    if reason in ("below cost", "undone in context") and v.gain is not None:
        reason = f"{reason}: gain {v.gain:+.2f} nats, cost {v.cost:.2f}"
    return Edit(c.start, c.end, c.original, c.replacement, round(v.confidence, 4), v.accepted, reason,
                source=c.source, gain=None if v.gain is None else round(v.gain, 3))  # fmt: skip
