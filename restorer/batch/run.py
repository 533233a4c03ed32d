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

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from restorer.batch.chunks import ChunkRestorer
from restorer.batch.inputs import FORMAT_EXTENSIONS, InputError, Job, SourceInfo, plan_jobs, scan_source
from restorer.batch.jobs import ProgressBar, RestoreOptions, _lines_done, _output, _run_job, _show_progress
from restorer.batch.shards import _check_shardable, _run_sharded
from restorer.batch.world import World

if TYPE_CHECKING:
    from restorer.infer.restorer import Restorer


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
