"""Scale-out of `restorer restore`: the input shared out across processes, merged back in order.

The planning and the shard/merge/resume logic are tested in one process, the ranks run one
after another with a no-op barrier (the last one, rank 0, merges). One test launches the real
command with ``accelerate launch`` on 2 CPU processes (gloo) and compares it byte for byte
with a one-process run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restorer.batch import (
    InputError,
    InputSource,
    Job,
    Piece,
    RestoreOptions,
    SourceInfo,
    plan_pieces,
    run_restore,
)
from restorer.batch.world import LaunchError, World
from restorer.infer import Explanation

if TYPE_CHECKING:
    from restorer.infer import Restorer

ROOT = Path(__file__).resolve().parent.parent


class Stub:
    """Upper-cases every line; raises on call number ``fail_at`` (an interruption)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.seen: list[str] = []

    def explain(self, docs: list[str], together: bool = False) -> list[Explanation]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("interrupted")
        self.seen += docs
        return [Explanation(d.upper(), sentences=[]) for d in docs]


def _options(resume: bool = False, chunk_lines: int = 10) -> RestoreOptions:
    return RestoreOptions(resume=resume, chunk_lines=chunk_lines, settings={"format": "text"})


def _restore(
    paths: list[str],
    out: Path | None,
    load: Callable[[], Stub] = Stub,
    world: World | None = None,
    resume: bool = False,
) -> None:
    loader = cast("Callable[[], Restorer]", load)  # the stub has the one method the I/O calls
    run_restore(paths, None if out is None else str(out), _options(resume), load=loader, world=world)


def _run_ranks(paths: list[str], out: Path, processes: int) -> None:
    """Every rank in turn, the main process last (it merges after the others are done)."""
    for rank in reversed(range(processes)):
        _restore(paths, out, world=World(rank, processes))


def _write(path: Path, n: int, tag: str) -> None:
    path.write_text("".join(f"{tag} line {i}.\n" for i in range(n)), encoding="utf-8")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ----------------------------------------------------------------------------- planning


@settings(max_examples=200, deadline=None)
@given(
    jobs=st.lists(st.lists(st.integers(0, 60), min_size=1, max_size=3), min_size=1, max_size=6),
    chunk_lines=st.integers(1, 16),
    processes=st.integers(1, 8),
)
def test_pieces_share_out_every_chunk_once_in_order(
    jobs: list[list[int]], chunk_lines: int, processes: int
) -> None:
    job_list = [
        Job([InputSource(f"{j}/{k}") for k in range(len(lines))], Path(f"out{j}")) for j, lines in enumerate(jobs)
    ]
    infos = {}
    for job, lines in zip(job_list, jobs, strict=True):
        for src, n in zip(job.sources, lines, strict=True):
            # every line is 7 bytes long, so line i starts at byte 7 * i
            infos[id(src)] = SourceInfo(n, 7 * n, "", [7 * i for i in range(0, n, chunk_lines)])
    pieces = plan_pieces(job_list, infos, chunk_lines, processes)

    covered = [(p.job, k, line) for p in pieces for k, line in _lines_of(p, jobs[p.job])]
    want = [(j, k, line) for j, lines in enumerate(jobs) for k, n in enumerate(lines) for line in range(n)]
    assert covered == want  # every line once, in input order
    keys = [(p.job, p.rank) for p in pieces]
    assert len(set(keys)) == len(keys)  # at most one shard per job and process
    assert [p.rank for p in pieces] == sorted(p.rank for p in pieces)  # contiguous shares
    for p in pieces:
        assert p.lines > 0 and 0 <= p.rank < processes
        assert p.start.line % chunk_lines == 0  # cut where a one-process run cuts
        assert p.start.offset == 7 * p.start.line and p.end.offset == 7 * p.end.line
    total = sum(sum(lines) for lines in jobs)
    for rank in range(processes):  # about the same number of lines each
        assert sum(p.lines for p in pieces if p.rank == rank) <= total / processes + chunk_lines


def _lines_of(p: Piece, lines: list[int]) -> list[tuple[int, int]]:
    """``(source, line)`` of every line of ``p``; ``lines``: the line counts of its job's sources."""
    start, end = p.start, p.end
    out = []
    for k in range(start.source, end.source + 1):
        first = start.line if k == start.source else 0
        stop = end.line if k == end.source else lines[k]
        out += [(k, line) for line in range(first, stop)]
    return out


# ----------------------------------------------------------------------------- shards, merge, resume


@pytest.mark.parametrize("processes", [2, 3, 7])
def test_ranks_restore_shards_that_merge_into_the_one_process_output(tmp_path: Path, processes: int) -> None:
    src = tmp_path / "in"
    (src / "deep").mkdir(parents=True)
    for name, n in (("a.txt", 0), ("b.txt", 3), ("deep/c.txt", 25), ("d.txt", 95)):
        _write(src / name, n, name)
    (src / "e.txt").write_bytes(b"CRLF line.\r\n\r\n  indented\nno newline at the end")
    _restore([str(src)], tmp_path / "one")
    _run_ranks([str(src)], tmp_path / "many", processes)
    assert _files(tmp_path / "many") == _files(tmp_path / "one")  # and no shard or sidecar left


def test_several_inputs_into_one_output(tmp_path: Path) -> None:
    paths = []
    for name, n in (("a.txt", 14), ("b.txt", 0), ("c.txt", 31)):
        _write(tmp_path / name, n, name)
        paths.append(str(tmp_path / name))
    (tmp_path / "d.txt").write_bytes(b"last, no newline")
    paths.append(str(tmp_path / "d.txt"))
    _restore(paths, tmp_path / "one.txt")
    _run_ranks(paths, tmp_path / "many.txt", 4)
    assert (tmp_path / "many.txt").read_bytes() == (tmp_path / "one.txt").read_bytes()
    assert not list(tmp_path.glob("many.txt.*"))


def test_each_rank_resumes_its_own_shard(tmp_path: Path) -> None:
    src, out = [str(tmp_path / "in.txt")], tmp_path / "out.txt"
    _write(tmp_path / "in.txt", 100, "in")
    with pytest.raises(RuntimeError):  # rank 1 (lines 50-99) dies in its third chunk
        _restore(src, out, lambda: Stub(fail_at=3), World(1, 2))
    state = json.loads((tmp_path / "out.txt.rank1.progress.json").read_text())
    assert (state["line"], state["finished"]) == (70, False)
    shard = (tmp_path / "out.txt.rank1.partial").read_text().splitlines()
    assert shard == [f"IN LINE {i}." for i in range(50, 70)]

    again, main = Stub(), Stub()
    _restore(src, out, lambda: again, World(1, 2), resume=True)
    assert again.seen == [f"in line {i}." for i in range(70, 100)]  # nothing done twice
    _restore(src, out, lambda: main, World(0, 2), resume=True)
    assert main.seen == [f"in line {i}." for i in range(50)]
    assert out.read_text().splitlines() == [f"IN LINE {i}." for i in range(100)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_the_merge_refuses_a_missing_shard(tmp_path: Path) -> None:
    _write(tmp_path / "in.txt", 40, "in")
    with pytest.raises(InputError, match=r"out.txt.rank1 is missing: a process did not finish its share"):
        _restore([str(tmp_path / "in.txt")], tmp_path / "out.txt", world=World(0, 2))
    assert not (tmp_path / "out.txt").exists()


def test_resume_with_another_number_of_processes_is_refused(tmp_path: Path) -> None:
    src, out = [str(tmp_path / "in.txt")], tmp_path / "out.txt"
    _write(tmp_path / "in.txt", 40, "in")
    with pytest.raises(RuntimeError):
        _restore(src, out, lambda: Stub(fail_at=2), World(0, 2))
    with pytest.raises(InputError, match=r"other settings \(processes: 2 -> 4\)"):
        _restore(src, out, world=World(0, 4), resume=True)


def test_several_processes_need_files_in_and_out(tmp_path: Path) -> None:
    _write(tmp_path / "in.txt", 3, "in")
    world = World(0, 2)
    with pytest.raises(InputError, match="2 processes cannot share stdin"):
        _restore([], tmp_path / "o.txt", world=world)
    with pytest.raises(InputError, match="2 processes cannot share stdout; give -o OUT"):
        _restore([str(tmp_path / "in.txt")], None, world=world)
    os.mkfifo(tmp_path / "fifo")  # a pipe: one process would read it all, the others nothing
    with pytest.raises(InputError, match="fifo is not a regular file; 2 processes need files"):
        _restore([str(tmp_path / "fifo")], tmp_path / "o.txt", world=world)


# ----------------------------------------------------------------------------- the launch environment


def test_world_from_the_launcher_environment() -> None:
    assert World.from_env({}) == World() and not World.from_env({}).distributed
    assert World.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == World()
    w = World.from_env({"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"})
    assert (w.rank, w.size, w.local_rank, w.local_size, w.distributed, w.is_main) == (5, 8, 1, 4, True, False)
    with pytest.raises(LaunchError, match="RANK is not"):
        World.from_env({"WORLD_SIZE": "2"})
    with pytest.raises(LaunchError, match="RANK=2 is not between 0 and WORLD_SIZE-1=1"):
        World.from_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(LaunchError, match="is not a whole number"):
        World.from_env({"WORLD_SIZE": "two"})
    mpi = {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    assert World.from_env(mpi) == World(3, 4, 1, 4)  # mpirun (accelerate launch --cpu)


def test_each_process_gets_its_gpu_or_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    w = World(3, 4, local_rank=1, local_size=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    devices = [w.device(d) for d in ("auto", "cuda", "cuda:0", "cpu")]
    assert devices == ["cuda:1", "cuda:1", "cuda:0", "cpu"]
    assert World().device("auto") == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert w.device("auto") == "cpu"
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    assert (w.threads(None), w.threads(3), World().threads(None)) == (4, 3, None)


# ----------------------------------------------------------------------------- the real launch


def _launch(args: list[str], processes: int, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    if processes == 1:
        cmd = [sys.executable, "-m", "restorer", *args]
    else:
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            "-m", "restorer", *args,
        ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return r.stderr


def test_accelerate_launch_on_two_cpu_processes_equals_one_process(tiny_model: Path, tmp_path: Path) -> None:
    """Text (the model's own output, no guard) and a folder of JSONL files: byte for byte."""
    rng = random.Random(0)
    words = "the firm stated final week that youngsters had been glad to see it again".split()
    text = tmp_path / "in.txt"
    lines = [" ".join(rng.choices(words, k=rng.randint(0, 14))).capitalize() + "." for _ in range(300)]
    text.write_text("\n".join(line if rng.random() > 0.05 else "" for line in lines), encoding="utf-8")
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, n in (("a.jsonl", 0), ("b.jsonl", 7), ("c.jsonl", 150)):
        rows = [json.dumps({"id": i, "text": lines[(i * 7) % len(lines)]}) for i in range(n)]
        (folder / name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    model = ["--model", str(tiny_model), "--chunk-lines", "16", "--device", "auto"]
    for processes in (1, 2):
        text_args = ["restore", str(text), "-o", f"text{processes}.txt", "--no-guard", *model]
        jsonl_args = ["restore", str(folder), "-o", f"jsonl{processes}/", "--format", "jsonl", *model]
        log = _launch(text_args, processes, tmp_path) + _launch(jsonl_args, processes, tmp_path)
        assert log.count("merged the shards of 2 processes") == (2 if processes == 2 else 0)
    one, two = (tmp_path / "text1.txt").read_bytes(), (tmp_path / "text2.txt").read_bytes()
    assert two == one and one != text.read_bytes() and one.count(b"\n") == 299
    assert _files(tmp_path / "jsonl2") == _files(tmp_path / "jsonl1")
    assert sorted(_files(tmp_path / "jsonl2")) == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "docs",
        "in.txt",
        "jsonl1",
        "jsonl2",
        "text1.txt",
        "text2.txt",
    ]
