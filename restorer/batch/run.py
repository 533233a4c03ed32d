"""Streaming, resumable input and output for ``restorer restore``.

The command reads files, folders or stdin and restores them line by line: line *i* of the
output is the restoration of line *i* of the input, with its line ending (``\\n`` or
``\\r\\n``) kept. Work goes in chunks of whole lines.

A run has three phases:

1. **plan**: turn the command line into jobs (sources → one target), checking paths;
2. **scan**: read every source once: UTF-8 (and JSON for ``--format jsonl``) is checked,
   lines are counted and the content is hashed, so that a bad byte on line 90,000 is
   reported before any model work and nothing is half-written;
3. **restore**: chunk by chunk. A file target is written as ``OUT.partial`` beside it, and
   after every chunk the partial is flushed and a small sidecar ``OUT.progress.json``
   records how far the run got (input line and byte offset, bytes of output). Killed at any
   moment, ``--resume`` cuts the partial back to the last recorded chunk and carries on.
   When a job is done the partial is renamed into place; the sidecars are removed once the
   whole run is done.

**Scale-out.** Under ``accelerate launch`` or ``torchrun`` (several processes, GPUs or nodes;
see :mod:`restorer.batch.world`) every process plans and scans the same jobs, then restores its own
contiguous share of their chunks (cut at the same chunk boundaries as a one-process run, and
shared out by lines) into shard files beside each target, ``OUT.rankR`` (written as
``OUT.rankR.partial`` with ``OUT.rankR.progress.json``, so each process resumes on its own).
After a barrier the main process concatenates each job's shards in rank order into
``OUT.partial``, renames it into place and removes the shards. Output to stdout and input
from stdin need a single process.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from restorer.batch.world import World

if TYPE_CHECKING:
    from restorer.infer.guard import Edit
    from restorer.infer.restorer import Explanation, Restorer

DEFAULT_CHUNK_LINES = 256
LONG_INPUT_LINES = 200  # a progress bar above this many lines
PROGRESS_VERSION = 1
FORMAT_EXTENSIONS = {"text": "txt", "jsonl": "jsonl"}
_INPUT_KEYS = ("text", "spun")  # JSONL: the text to restore, first match wins
_OUTPUT_KEYS = ("text", "edits", "spin_score", "rejected", "sentences")


class InputError(Exception):
    """A problem with the inputs, outputs or options: one line for the user, exit code 2."""


@dataclass
class RestoreOptions:
    fmt: str = "text"  # "text" or "jsonl"
    explain: bool = False
    resume: bool = False
    chunk_lines: int = DEFAULT_CHUNK_LINES
    settings: dict[str, Any] = field(default_factory=dict)  # what a resumed run must share
    progress: bool | None = None  # None: a bar on stderr for long inputs when it is a terminal


# ----------------------------------------------------------------------------- plan


@dataclass
class Source:
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

    sources: list[Source]
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


def _source(p: str, stdin: BinaryIO | None) -> Source:
    if p == "-":
        return Source("<stdin>", None, (stdin or sys.stdin.buffer).read())
    path = Path(p)
    if not path.exists():
        raise InputError(f"no such file: {p}")
    if path.is_file():
        return Source(p, path)
    try:  # a pipe such as <(zcat file.gz): read it once, like stdin
        with open(path, "rb") as fh:
            return Source(p, None, fh.read())
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
    return [Job([Source(str(f), f)], out / f.relative_to(folder)) for f in files]


# ----------------------------------------------------------------------------- scan


@dataclass
class SourceInfo:
    lines: int
    size: int
    sha256: str
    marks: list[int] = field(default_factory=list)  # byte offsets of lines 0, N, 2N, ... (N: mark_every)

    def fingerprint(self, name: str) -> dict[str, Any]:
        return {"name": name, "size": self.size, "sha256": self.sha256}


def scan_source(src: Source, fmt: str, mark_every: int = 0) -> SourceInfo:
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


# ----------------------------------------------------------------------------- restore a chunk


def split_ending(line: str) -> tuple[str, str]:
    """``(body, ending)`` of one line read up to ``\\n``; ending is ``\\r\\n``, ``\\n`` or ``""``."""
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n"):
        return line[:-1], "\n"
    return line, ""


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
        exps = iter(self.load().explain([lines[k][0] for k in todo]) if todo else [])
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


# ----------------------------------------------------------------------------- outputs


@dataclass
class Position:
    """How far a job got: ``line`` lines (``offset`` bytes) of source number ``source``."""

    source: int = 0
    line: int = 0
    offset: int = 0


class StdoutOutput:
    """Writes each chunk to stdout as soon as it is done; coloured diffs on a terminal."""

    resumable = False

    def __init__(self, rich: bool = False) -> None:
        self._console: Any = None
        if rich:
            from rich.console import Console

            self._console = Console(file=sys.stdout, highlight=False, soft_wrap=True, emoji=False)

    def plan(self, resume: bool) -> Position | None:
        if resume:
            raise InputError("--resume needs -o OUT: output to stdout cannot be resumed")
        return Position()

    def start(self) -> None:
        pass

    def write(self, results: Sequence[LineResult], pos: Position) -> None:
        if self._console is not None:
            for r in results:
                edits = r.explanation.edits if r.explanation is not None else []
                self._console.print(rich_diff(r.source, edits), end=r.ending)
            self._console.file.flush()
            return
        sys.stdout.buffer.write(_encode("".join(r.rendered for r in results)))
        sys.stdout.buffer.flush()

    def finish(self) -> None:
        sys.stdout.flush()

    def abort(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class FileOutput:
    """``OUT.partial`` written chunk by chunk, with ``OUT.progress.json`` recording how far it
    got; renamed to ``OUT`` when the job is done.

    The sidecar is replaced atomically after the chunk it counts is flushed and synced, so
    after a kill the partial holds at least the recorded bytes and any extra bytes are cut
    off on resume: no line is lost, repeated or half-written.
    """

    def __init__(
        self,
        target: Path,
        fingerprint: list[dict[str, Any]] | None,
        settings: dict[str, Any],
        origin: Position | None = None,
    ) -> None:
        self.target = target
        self.origin = origin or Position()  # where a fresh run starts (a shard: its first line)
        self.partial = target.with_name(target.name + ".partial")
        self.sidecar = target.with_name(target.name + ".progress.json")
        self.fingerprint = fingerprint  # None: stdin, which cannot be resumed
        self.settings = settings
        self._fh: BinaryIO | None = None
        self._start: Position | None = None
        self._written = 0

    @property
    def resumable(self) -> bool:
        return self.fingerprint is not None

    # -- before any work: where to start, checked against the sidecar
    def plan(self, resume: bool) -> Position | None:
        """The position to start from, or ``None`` when a resumed job was already done."""
        self._start, self._written = self.origin, 0
        if not resume:
            return self._start
        if not self.resumable:
            raise InputError("--resume needs input files: stdin cannot be resumed")
        state = self._read_sidecar()
        if state is None:
            if self.partial.exists():
                _note(f"{self.partial} has no progress record; starting {self.target} over")
            return self._start
        self._check_same_job(state)
        if state["finished"]:
            if self.target.exists():
                return None
            _note(f"{self.target} is missing; restoring it again")
            return self._start
        if not self.partial.exists():
            _note(f"{self.partial} is missing; starting {self.target} over")
            return self._start
        if self.partial.stat().st_size < state["written"]:
            raise InputError(
                f"{self.partial} is shorter than its progress record says; run without --resume to start over"
            )
        self._start = Position(state["source"], state["line"], state["offset"])
        self._written = state["written"]
        return self._start

    def _read_sidecar(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise InputError(
                f"{self.sidecar} is damaged; run without --resume to start {self.target} over"
            ) from None
        keys = {"version", "sources", "settings", "source", "line", "offset", "written", "finished"}
        if not isinstance(state, dict) or not keys <= set(state) or state["version"] != PROGRESS_VERSION:
            raise InputError(f"{self.sidecar} is not a progress file this version of restorer can resume")
        return state

    def _check_same_job(self, state: dict[str, Any]) -> None:
        old, new = state["sources"], self.fingerprint or []
        if len(old) != len(new):
            raise InputError(
                f"the interrupted run of {self.target} had {len(old)} input(s), this one has {len(new)}; "
                "run without --resume to start over"
            )
        for a, b in zip(old, new, strict=True):
            if (a.get("size"), a.get("sha256")) != (b["size"], b["sha256"]):
                how = (
                    f"it was {a.get('size')} bytes, now {b['size']}"
                    if a.get("size") != b["size"]
                    else "its content differs"
                )
                raise InputError(
                    f"{b['name']} changed since the interrupted run ({how}); run without --resume to start over"
                )
        changed = [k for k in sorted(set(state["settings"]) | set(self.settings))
                   if state["settings"].get(k) != self.settings.get(k)]  # fmt: skip
        if changed:
            diffs = ", ".join(
                f"{k}: {state['settings'].get(k)!r} -> {self.settings.get(k)!r}" for k in changed
            )
            raise InputError(
                f"the interrupted run of {self.target} used other settings ({diffs}); "
                "resume with the same options, or run without --resume to start over"
            )

    # -- the work
    def start(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self._written and self._start is not None:
            fh = open(self.partial, "r+b")  # noqa: SIM115 (open across write() calls; closed in finish/abort)
            fh.truncate(self._written)  # drop whatever a killed run wrote past its record
            fh.seek(self._written)
            self._fh = fh
        else:
            self._fh = open(self.partial, "wb")  # noqa: SIM115
            if self.resumable:
                self._save(self._start or Position(), finished=False)

    def write(self, results: Sequence[LineResult], pos: Position) -> None:
        assert self._fh is not None
        self._fh.write(_encode("".join(r.rendered for r in results)))
        self._fh.flush()
        if self.resumable:
            os.fsync(self._fh.fileno())
            self._written = self._fh.tell()
            self._save(pos, finished=False)

    def copy_from(self, path: Path) -> None:
        """Append a whole file (a finished shard) to the partial."""
        assert self._fh is not None
        with open(path, "rb") as fh:
            shutil.copyfileobj(fh, self._fh, 1 << 20)

    def finish(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        if self.resumable:
            self._save(Position(), finished=True)
        os.replace(self.partial, self.target)

    def abort(self) -> None:
        """After an error: keep what a resume needs, drop what it cannot use."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if not self.resumable:
            self.partial.unlink(missing_ok=True)

    def cleanup(self) -> None:
        self.sidecar.unlink(missing_ok=True)

    def _save(self, pos: Position, finished: bool) -> None:
        state = {
            "version": PROGRESS_VERSION,
            "target": str(self.target),
            "sources": self.fingerprint,
            "settings": self.settings,
            "source": pos.source,
            "line": pos.line,
            "offset": pos.offset,
            "written": self._written,
            "finished": finished,
        }
        tmp = self.sidecar.with_name(self.sidecar.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.sidecar)


def _note(message: str) -> None:
    print(f"restorer: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------- run


def iter_chunks(fh: BinaryIO, size: int, limit: int | None = None) -> Iterator[list[bytes]]:
    """Chunks of ``size`` lines from ``fh``; at most ``limit`` lines in all."""
    lines: Iterable[bytes] = fh if limit is None else itertools.islice(fh, limit)
    chunk: list[bytes] = []
    for raw in lines:
        chunk.append(raw)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ProgressBar:
    """Lines per second (and sentences per second) on stderr; silent when not wanted."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self._bar: Any = None
        self._sentences = 0
        self._t0 = time.perf_counter()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=done, unit=" lines", file=sys.stderr, dynamic_ncols=True, smoothing=0.1
            )

    def update(self, results: Sequence[LineResult]) -> None:
        if self._bar is None:
            return
        self._sentences += sum(r.n_sentences for r in results)
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{self._sentences / elapsed:.0f} sentences/s", refresh=False)
        self._bar.update(len(results))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_restore(
    paths: Sequence[str],
    output: str | None,
    options: RestoreOptions,
    load: Callable[[], Restorer],
    stdin: BinaryIO | None = None,
    world: World | None = None,
) -> None:
    """``restorer restore``: plan, scan, then restore every job chunk by chunk; with several
    processes in ``world``, this process's share of the chunks, merged by the main process."""
    world = world or World()
    if options.fmt not in FORMAT_EXTENSIONS:
        raise InputError(f"unknown format {options.fmt!r}; use text or jsonl")
    if options.chunk_lines < 1:
        raise InputError("--chunk-lines must be at least 1")
    if world.distributed:
        _check_shardable(paths, output, world)
    jobs = plan_jobs(paths, output, options.fmt, stdin)
    infos = {id(s): scan_source(s, options.fmt, options.chunk_lines) for job in jobs for s in job.sources}
    chunker = ChunkRestorer(load, options.fmt, options.explain)
    if world.distributed:
        _run_sharded(jobs, infos, options, chunker, world)
    else:
        _run_single(jobs, infos, options, chunker)


def _run_single(
    jobs: list[Job], infos: dict[int, SourceInfo], options: RestoreOptions, chunker: ChunkRestorer
) -> None:
    outputs = [_output(job, infos, options) for job in jobs]
    starts = [out.plan(options.resume) for out in outputs]  # every resume check before any work
    total = sum(infos[id(s)].lines for job in jobs for s in job.sources)
    on_screen = any(job.target is None for job in jobs) and sys.stdout.isatty()
    done = sum(_lines_done(job, start, infos) for job, start in zip(jobs, starts, strict=True))
    if done < total:
        chunker.load()  # a model error now, before any output is opened
    bar = ProgressBar(total, done, _show_progress(options, total, on_screen))
    try:
        for job, out, start in zip(jobs, outputs, starts, strict=True):
            _run_job(job, out, start, chunker, options.chunk_lines, bar)
    finally:
        bar.close()
    for out in outputs:
        out.cleanup()


def _show_progress(options: RestoreOptions, total: int, on_screen: bool) -> bool:
    """The bar is for long inputs on a terminal, not when the output itself scrolls by there."""
    if options.progress is not None:
        return options.progress
    return total > LONG_INPUT_LINES and sys.stderr.isatty() and not on_screen


def _output(job: Job, infos: dict[int, SourceInfo], options: RestoreOptions) -> StdoutOutput | FileOutput:
    if job.target is None:
        return StdoutOutput(rich=options.explain and options.fmt == "text" and sys.stdout.isatty())
    return _file_output(job, infos, options.settings)


def _file_output(job: Job, infos: dict[int, SourceInfo], settings: dict[str, Any]) -> FileOutput:
    assert job.target is not None
    if any(s.path is None for s in job.sources):
        fingerprint = None
    else:
        fingerprint = [infos[id(s)].fingerprint(s.name) for s in job.sources]
    return FileOutput(job.target, fingerprint, settings)


def _lines_done(job: Job, start: Position | None, infos: dict[int, SourceInfo]) -> int:
    lines = [infos[id(s)].lines for s in job.sources]
    if start is None:
        return sum(lines)
    return sum(lines[: start.source]) + start.line


def _run_job(
    job: Job,
    out: StdoutOutput | FileOutput,
    start: Position | None,
    chunker: ChunkRestorer,
    chunk_lines: int,
    bar: ProgressBar,
    end: Position | None = None,
) -> None:
    """Restore ``job`` from ``start`` up to ``end`` (default: its end) into ``out``."""
    if start is None:  # finished by the interrupted run
        return
    out.start()
    try:
        last = len(job.sources) - 1 if end is None else end.source
        for k in range(start.source, last + 1):
            pos = start if k == start.source else Position(k)
            stop = end.line if end is not None and k == end.source else None
            _run_source(job.sources[k], pos, out, chunker, chunk_lines, bar, stop)
        out.finish()
    except BaseException:
        out.abort()
        if isinstance(out, FileOutput) and out.resumable:
            _note(f"stopped; {out.partial} keeps the work done so far: run the same command with --resume")
        raise


def _run_source(
    src: Source, pos: Position, out: StdoutOutput | FileOutput, chunker: ChunkRestorer, chunk_lines: int,
    bar: ProgressBar, stop: int | None = None,
) -> None:  # fmt: skip
    """Restore ``src`` from ``pos`` up to line ``stop`` (default: its end)."""
    line, offset = pos.line, pos.offset
    with src.open() as fh:
        fh.seek(offset)
        for chunk in iter_chunks(fh, chunk_lines, None if stop is None else stop - line):
            results = chunker(chunk)
            line += len(chunk)
            offset += sum(len(raw) for raw in chunk)
            out.write(results, Position(pos.source, line, offset))
            bar.update(results)


# ----------------------------------------------------------------------------- scale-out


@dataclass(frozen=True)
class Piece:
    """Whole chunks of one job, in input order, that process ``rank`` restores into its shard."""

    job: int
    rank: int
    start: Position  # the first line (source, line, byte offset)
    end: Position  # just past the last line
    lines: int


def plan_pieces(
    jobs: Sequence[Job], infos: dict[int, SourceInfo], chunk_lines: int, processes: int
) -> list[Piece]:
    """Share out the chunks of every job, cut where a one-process run cuts them, so that each
    process gets one contiguous run of chunks with about the same number of lines as the
    others; a job may be shared by several processes, a process may have parts of several jobs.

    ``infos`` must come from ``scan_source(..., mark_every=chunk_lines)``."""
    chunks = list(_chunks(jobs, infos, chunk_lines))
    total = sum(n for *_, n in chunks)
    pieces: list[Piece] = []
    before = 0
    for job, start, end, n in chunks:
        rank = min(processes - 1, (2 * before + n) * processes // (2 * total))  # by the chunk's middle line
        before += n
        if pieces and (pieces[-1].job, pieces[-1].rank) == (job, rank):
            pieces[-1] = replace(pieces[-1], end=end, lines=pieces[-1].lines + n)
        else:
            pieces.append(Piece(job, rank, start, end, n))
    return pieces


def _chunks(
    jobs: Sequence[Job], infos: dict[int, SourceInfo], chunk_lines: int
) -> Iterator[tuple[int, Position, Position, int]]:
    """``(job, start, end, lines)`` of every chunk of every job, in order."""
    for j, job in enumerate(jobs):
        for k, src in enumerate(job.sources):
            info = infos[id(src)]
            assert len(info.marks) == -(-info.lines // chunk_lines), "scan with mark_every=chunk_lines"
            for c, offset in enumerate(info.marks):
                first = c * chunk_lines
                n = min(chunk_lines, info.lines - first)
                end_offset = info.marks[c + 1] if c + 1 < len(info.marks) else info.size
                yield j, Position(k, first, offset), Position(k, first + n, end_offset), n


def shard_path(target: Path, rank: int) -> Path:
    """The finished shard of ``target`` written by process ``rank``."""
    return target.with_name(f"{target.name}.rank{rank}")


def _check_shardable(paths: Sequence[str], output: str | None, world: World) -> None:
    if not paths or "-" in paths:
        raise InputError(
            f"{world.size} processes cannot share stdin; give input files, or run a single process"
        )
    if output is None or output == "-":
        raise InputError(
            f"{world.size} processes cannot share stdout; give -o OUT (each process writes a shard, "
            "merged into OUT), or run a single process"
        )
    for p in paths:  # a pipe would be read by one process only
        path = Path(p)
        if path.exists() and not (path.is_file() or path.is_dir()):
            raise InputError(
                f"{p} is not a regular file; {world.size} processes need files they can each read"
            )


def _run_sharded(
    jobs: list[Job],
    infos: dict[int, SourceInfo],
    options: RestoreOptions,
    chunker: ChunkRestorer,
    world: World,
) -> None:
    """This process's pieces into its shards; then, on the main process, every shard merged."""
    settings = {**options.settings, "processes": world.size, "chunk_lines": options.chunk_lines}
    merged = [_file_output(job, infos, settings) for job in jobs]
    todo = [k for k, out in enumerate(merged) if out.plan(options.resume) is not None]  # not merged yet
    pending = set(todo)
    pieces = [p for p in plan_pieces(jobs, infos, options.chunk_lines, world.size) if p.job in pending]
    _restore_pieces(jobs, [p for p in pieces if p.rank == world.rank], merged, infos, options, chunker, world)
    world.barrier()  # every shard is finished
    if not world.is_main:
        return
    ranks: dict[int, list[int]] = {k: [] for k in todo}  # the processes with a share of each job, in order
    for p in pieces:
        ranks[p.job].append(p.rank)
    for k in todo:
        target = merged[k].target
        _merge(merged[k], [shard_path(target, rank) for rank in ranks[k]])
        _remove_shards(target, world.size)
    for job, out in zip(jobs, merged, strict=True):
        out.cleanup()
        assert job.target is not None
        _remove_shards(job.target, world.size)  # left by a run killed between merge and removal
    if todo:
        _note(f"merged the shards of {world.size} processes into {len(todo)} output file(s)")


def _restore_pieces(
    jobs: list[Job],
    mine: list[Piece],
    merged: list[FileOutput],
    infos: dict[int, SourceInfo],
    options: RestoreOptions,
    chunker: ChunkRestorer,
    world: World,
) -> None:
    shards = [
        FileOutput(
            shard_path(merged[p.job].target, p.rank),
            merged[p.job].fingerprint,
            merged[p.job].settings,
            p.start,
        )
        for p in mine
    ]
    starts = [out.plan(options.resume) for out in shards]  # every resume check before any work
    total = sum(p.lines for p in mine)
    done = sum(
        p.lines
        if s is None
        else _lines_done(jobs[p.job], s, infos) - _lines_done(jobs[p.job], p.start, infos)
        for p, s in zip(mine, starts, strict=True)
    )
    if done < total:
        chunker.load()
    bar = ProgressBar(total, done, world.is_main and _show_progress(options, total, on_screen=False))
    try:
        for p, out, start in zip(mine, shards, starts, strict=True):
            _run_job(jobs[p.job], out, start, chunker, options.chunk_lines, bar, p.end)
    finally:
        bar.close()


def _merge(out: FileOutput, shards: list[Path]) -> None:
    """The shards of one job, in order, into ``OUT.partial``, renamed to ``OUT``."""
    missing = [s for s in shards if not s.is_file()]
    if missing:
        raise InputError(
            f"{missing[0]} is missing: a process did not finish its share; run the same command with --resume"
        )
    out.plan(resume=False)
    out.start()
    try:
        for shard in shards:
            out.copy_from(shard)
        out.finish()
    except BaseException:
        out.abort()
        raise


def _remove_shards(target: Path, processes: int) -> None:
    for rank in range(processes):
        shard = shard_path(target, rank)
        for path in (
            shard,
            shard.with_name(shard.name + ".partial"),
            shard.with_name(shard.name + ".progress.json"),
        ):
            path.unlink(missing_ok=True)
