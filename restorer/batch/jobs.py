"""Restore one job chunk by chunk from a position, with a progress bar."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from restorer.batch.chunks import ChunkRestorer, LineResult
from restorer.batch.inputs import InputSource, Job, SourceInfo
from restorer.batch.outputs import FileOutput, Position, StdoutOutput, _note

if TYPE_CHECKING:
    pass


DEFAULT_CHUNK_LINES = 256


LONG_INPUT_LINES = 200  # a progress bar above this many lines


@dataclass
class RestoreOptions:
    fmt: str = "text"  # "text" or "jsonl"
    explain: bool = False
    resume: bool = False
    chunk_lines: int = DEFAULT_CHUNK_LINES
    settings: dict[str, Any] = field(default_factory=dict)  # what a resumed run must share
    progress: bool | None = None  # None: a bar on stderr for long inputs when it is a terminal


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
    src: InputSource, pos: Position, out: StdoutOutput | FileOutput, chunker: ChunkRestorer, chunk_lines: int,
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
