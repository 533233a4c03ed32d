"""Where restored chunks go: stdout, or ``OUT.partial`` with its ``OUT.progress.json`` sidecar,
renamed to ``OUT`` when the job is done (the record a ``--resume`` continues from)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from restorer.batch.chunks import LineResult, _encode, rich_diff
from restorer.batch.inputs import InputError

if TYPE_CHECKING:
    pass


PROGRESS_VERSION = 1


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
