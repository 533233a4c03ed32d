"""The inputs of ``restorer restore``: plan the jobs (sources into one target each, paths checked)
and scan every source once (UTF-8, JSON for ``--format jsonl``, line count, content hash)
before any model work."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    pass


FORMAT_EXTENSIONS = {"text": "txt", "jsonl": "jsonl"}


_INPUT_KEYS = ("text", "spun")  # JSONL: the text to restore, first match wins


class InputError(Exception):
    """A problem with the inputs, outputs or options: one line for the user, exit code 2."""


@dataclass
class InputSource:
    """One input: a file, or stdin read into memory."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        if self.path is None:
            return io.BytesIO(self.data or b"")
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot read {self.name}: {exc.strerror}") from None


@dataclass
class Job:
    """Sources restored, in order, into one target (``None``: stdout)."""

    sources: list[InputSource]
    target: Path | None


def plan_jobs(paths: Sequence[str], output: str | None, fmt: str, stdin: BinaryIO | None = None) -> list[Job]:
    """Jobs for the command line: every input into ``output`` (a file, or stdout), or, when
    an input is a folder or ``output`` is an existing folder, one output file per input
    file under ``output`` at the same relative path."""
    paths = list(paths) or ["-"]
    if paths.count("-") > 1:
        raise InputError("stdin ('-') can be given only once")
    out = Path(output) if output and output != "-" else None
    out_is_folder = out is not None and (out.is_dir() or str(output).endswith(("/", os.sep)))
    if not out_is_folder and not any(p != "-" and Path(p).is_dir() for p in paths):
        return [Job([_source(p, stdin) for p in paths], out)]
    if out is None:
        raise InputError("a folder of inputs needs -o OUT_FOLDER (outputs mirror the input folder)")
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {output} is a file, but a folder of inputs needs an output folder")
    jobs: list[Job] = []
    for p in paths:
        if p == "-":
            raise InputError("stdin cannot be restored into a folder; give -o a file name")
        if Path(p).is_dir():
            jobs.extend(_folder_jobs(Path(p), out, fmt))
        else:
            jobs.append(Job([_source(p, stdin)], out / Path(p).name))
    _check_distinct_targets(jobs)
    return jobs


def _check_distinct_targets(jobs: list[Job]) -> None:
    seen: dict[Path, str] = {}
    for job in jobs:
        assert job.target is not None
        key = job.target.resolve()
        if key in seen:
            raise InputError(f"{seen[key]} and {job.sources[0].name} would both be written to {job.target}")
        seen[key] = job.sources[0].name


def _source(p: str, stdin: BinaryIO | None) -> InputSource:
    if p == "-":
        return InputSource("<stdin>", None, (stdin or sys.stdin.buffer).read())
    path = Path(p)
    if not path.exists():
        raise InputError(f"no such file: {p}")
    if path.is_file():
        return InputSource(p, path)
    try:  # a pipe such as <(zcat file.gz): read it once, like stdin
        with open(path, "rb") as fh:
            return InputSource(p, None, fh.read())
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None


def _folder_jobs(folder: Path, out: Path, fmt: str) -> list[Job]:
    ext = FORMAT_EXTENSIONS[fmt]
    out_abs = out.resolve()
    if out_abs == folder.resolve():
        raise InputError(
            f"-o {out} is the input folder; give another folder (outputs mirror the input's layout)"
        )
    files = sorted(
        (f for f in folder.rglob(f"*.{ext}") if f.is_file() and not f.resolve().is_relative_to(out_abs)),
        key=lambda f: f.relative_to(folder).as_posix(),
    )
    if not files:
        print(f"restorer: warning: no *.{ext} files in {folder}", file=sys.stderr)
    return [Job([InputSource(str(f), f)], out / f.relative_to(folder)) for f in files]


@dataclass
class SourceInfo:
    lines: int
    size: int
    sha256: str
    marks: list[int] = field(default_factory=list)  # byte offsets of lines 0, N, 2N, ... (N: mark_every)

    def fingerprint(self, name: str) -> dict[str, Any]:
        return {"name": name, "size": self.size, "sha256": self.sha256}


def scan_source(src: InputSource, fmt: str, mark_every: int = 0) -> SourceInfo:
    """Check every line (UTF-8, and JSON for jsonl), count the lines and hash the content;
    with ``mark_every``, note the byte offset of every ``mark_every``-th line (chunk starts)."""
    digest = hashlib.sha256()
    offset = n = 0
    marks: list[int] = []
    with src.open() as fh:
        for raw in fh:
            if mark_every and n % mark_every == 0:
                marks.append(offset)
            n += 1
            digest.update(raw)
            text = decode_line(raw, src.name, n, offset)
            if fmt == "jsonl" and text.strip():
                parse_record(split_ending(text)[0], src.name, n)
            offset += len(raw)
    return SourceInfo(n, offset, digest.hexdigest(), marks)


def decode_line(raw: bytes, name: str, line_no: int, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not UTF-8 text at byte {offset + exc.start} (line {line_no}); "
            "convert it first, e.g. with iconv -f latin1 -t utf-8"
        ) from None


def parse_record(text: str, name: str, line_no: int) -> tuple[dict[str, Any], str]:
    """A JSONL record and the text to restore in it (``"text"``, else ``"spun"``)."""
    try:
        rec = json.loads(text.lstrip("\ufeff"))  # a byte-order mark is no reason to fail
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}:{line_no}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    if isinstance(rec, dict):
        for key in _INPUT_KEYS:
            if isinstance(rec.get(key), str):
                return rec, rec[key]
    raise InputError(f'{name}:{line_no}: expected a JSON object with a "text" (or "spun") string')


def split_ending(line: str) -> tuple[str, str]:
    """``(body, ending)`` of one line read up to ``\\n``; ending is ``\\r\\n``, ``\\n`` or ``""``."""
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n"):
        return line[:-1], "\n"
    return line, ""
