"""Restore a chunk of input lines: each output line rendered (text, a diff, or a JSONL record)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from restorer.batch.inputs import parse_record, split_ending

if TYPE_CHECKING:
    from restorer.infer.guard import Edit
    from restorer.infer.restorer import Explanation, Restorer


_OUTPUT_KEYS = ("text", "edits", "spin_score", "rejected", "sentences")


@dataclass
class LineResult:
    """One output line: the plain rendering (ending included), and what a terminal view needs."""

    rendered: str
    source: str = ""
    ending: str = ""
    explanation: Explanation | None = None

    @property
    def n_sentences(self) -> int:
        return len(self.explanation.sentences) if self.explanation is not None else 0


def diff_segments(source: str, edits: Sequence[Edit]) -> list[tuple[str, str]]:
    """``source`` cut into ``("same"|"old"|"new", text)`` segments by the edits."""
    segs: list[tuple[str, str]] = []
    pos = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        if e.start < pos:
            continue  # overlapping edits: the first one wins, as in apply_edits
        segs.append(("same", source[pos : e.start]))
        segs.append(("old", e.original))
        segs.append(("new", e.replacement))
        pos = e.end
    segs.append(("same", source[pos:]))
    return [(kind, text) for kind, text in segs if text]


def plain_diff(source: str, edits: Sequence[Edit]) -> str:
    """``source`` with ``[-old-]{+new+}`` markers (the wdiff style) around every edit."""
    marks = {"same": "{}", "old": "[-{}-]", "new": "{{+{}+}}"}
    return "".join(marks[kind].format(text) for kind, text in diff_segments(source, edits))


def judge_report(source: str, exp: Explanation, max_rejected: int = 5) -> str:
    """The LM judge's reasons for one line: each edit with its proposer and gain in nats, and
    the best rejected candidates with why they were rejected."""
    def one(e: Edit) -> str:
        gain = "" if e.gain is None else f", {e.gain:+.2f} nats"
        return f"{e.original!r} -> {e.replacement!r} ({e.source}{gain})"

    lines = [f"judge: {source[:60]!r}" + ("..." if len(source) > 60 else "")]
    lines += [f"  edit     {one(e)}" for e in exp.edits]
    scored = sorted((e for e in exp.rejected if e.gain is not None), key=lambda e: -(e.gain or 0.0))
    lines += [f"  rejected {one(e)}: {e.reason}" for e in scored[:max_rejected]]
    refused = [e for e in exp.rejected if e.gain is None and e.reason != "pre-filter"]
    if refused:
        lines.append(f"  refused by the guard: {len(refused)} (e.g. {one(refused[0])}: {refused[0].reason})")
    return "\n".join(lines) + "\n"


def rich_diff(source: str, edits: Sequence[Edit]) -> Any:
    """A ``rich.text.Text`` of ``source`` with replaced words struck in red, new ones in green."""
    from rich.text import Text

    styles = {"same": "", "old": "red strike", "new": "bold green"}
    out = Text()
    for kind, text in diff_segments(source, edits):
        out.append(text, style=styles[kind])
    return out


class ChunkRestorer:
    """Restores chunks of raw input lines (bytes, each with its ``\\n``)."""

    def __init__(self, load: Callable[[], Restorer], fmt: str, explain: bool) -> None:
        self._load = load
        self._restorer: Restorer | None = None
        self.fmt = fmt
        self.explain = explain

    def load(self) -> Restorer:
        """The restorer, loaded on first use (input errors come before the model)."""
        if self._restorer is None:
            self._restorer = self._load()
        return self._restorer

    def __call__(self, raw_lines: Sequence[bytes]) -> list[LineResult]:
        lines = [split_ending(raw.decode("utf-8")) for raw in raw_lines]
        if self.fmt == "jsonl":
            return self._jsonl(lines)
        return self._text(lines)

    def _text(self, lines: list[tuple[str, str]]) -> list[LineResult]:
        todo = [k for k, (body, _) in enumerate(lines) if body.strip()]
        # a text file's lines are one document, for the judge's document gate (a chunk at a time:
        # the unit of resume); JSONL records are documents of their own
        exps = iter(self.load().explain([lines[k][0] for k in todo], together=True) if todo else [])
        out: list[LineResult] = []
        for body, ending in lines:
            if not body.strip():
                out.append(LineResult(body + ending, body, ending))
                continue
            exp = next(exps)
            text = plain_diff(body, exp.edits) if self.explain else exp.text
            if self.explain and any(e.gain is not None for e in exp.edits + exp.rejected):
                sys.stderr.write(judge_report(body, exp))  # stdout keeps line i for line i
            out.append(LineResult(_one_line(text) + ending, body, ending, exp))
        return out

    def _jsonl(self, lines: list[tuple[str, str]]) -> list[LineResult]:
        records = [parse_record(body, "<input>", 0) if body.strip() else None for body, _ in lines]
        docs = [r[1] for r in records if r is not None]
        exps = iter(self.load().explain(docs) if docs else [])
        out: list[LineResult] = []
        for (body, ending), rec in zip(lines, records, strict=True):
            if rec is None:  # a blank line stays a blank line
                out.append(LineResult(body + ending, body, ending))
                continue
            exp = next(exps)
            row = self._row(rec[0], exp)
            out.append(LineResult(_dumps(row) + (ending or "\n"), body, ending, exp))
        return out

    def _row(self, rec: dict[str, Any], exp: Explanation) -> dict[str, Any]:
        row = {k: v for k, v in rec.items() if k not in _OUTPUT_KEYS}
        row["text"] = exp.text
        row["edits"] = [e.to_dict() for e in exp.edits]
        row["spin_score"] = round(exp.spin_score, 4)
        if self.explain:
            row["rejected"] = [e.to_dict() for e in exp.rejected]
            row["sentences"] = exp.sentences
        return row


def _one_line(text: str) -> str:
    """A restored line must stay one line, whatever the model wrote."""
    return text.replace("\r\n", " ").replace("\n", " ") if "\n" in text else text


def _dumps(row: dict[str, Any]) -> str:
    text = json.dumps(row, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a "\ud800" escape: keep them escaped
        text = json.dumps(row, ensure_ascii=True)
    return text


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="replace")
