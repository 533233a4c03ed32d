"""``restorer restore`` on files: streaming, resumable, and shared out across processes.

The command reads files, folders or stdin and restores them line by line: line *i* of the
output is the restoration of line *i* of the input, with its line ending kept. Work goes in
chunks of whole lines; :func:`run_restore` (:mod:`.run`) drives three phases:

1. plan and scan (:mod:`.inputs`): jobs from the command line, every source checked once;
2. restore (:mod:`.jobs`, :mod:`.chunks`, :mod:`.outputs`): chunk by chunk into ``OUT.partial``
   with a progress record, so that ``--resume`` continues a killed run;
3. under ``accelerate launch`` or ``torchrun`` (:mod:`.world`), each process restores its share
   into a shard and the main process merges them (:mod:`.shards`).
"""

from __future__ import annotations

from restorer.batch.chunks import (
    ChunkRestorer,
    LineResult,
    diff_segments,
    judge_report,
    plain_diff,
    rich_diff,
)
from restorer.batch.inputs import InputError, InputSource, Job, SourceInfo, plan_jobs, scan_source
from restorer.batch.jobs import RestoreOptions
from restorer.batch.outputs import FileOutput, Position, StdoutOutput
from restorer.batch.run import run_restore
from restorer.batch.shards import Piece, plan_pieces, shard_path
from restorer.batch.world import LaunchError, World, connected

__all__ = [
    "ChunkRestorer",
    "FileOutput",
    "InputError",
    "InputSource",
    "Job",
    "LaunchError",
    "LineResult",
    "Piece",
    "Position",
    "RestoreOptions",
    "SourceInfo",
    "StdoutOutput",
    "World",
    "connected",
    "diff_segments",
    "judge_report",
    "plain_diff",
    "plan_jobs",
    "plan_pieces",
    "rich_diff",
    "run_restore",
    "scan_source",
    "shard_path",
]
