"""Scale-out: share the chunks of every job among the processes of a launch, each into its own
shard beside the target, merged in order by the main process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from restorer.batch.chunks import ChunkRestorer
from restorer.batch.inputs import InputError, Job, SourceInfo
from restorer.batch.jobs import (
    ProgressBar,
    RestoreOptions,
    _file_output,
    _lines_done,
    _run_job,
    _show_progress,
)
from restorer.batch.outputs import FileOutput, Position, _note
from restorer.batch.world import World

if TYPE_CHECKING:
    pass


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
