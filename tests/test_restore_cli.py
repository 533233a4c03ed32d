"""`restorer restore`: inputs, outputs, layout, errors, explain, resume; plus layout properties
of ``Restorer.restore`` and device selection.

The CLI tests run the real command in a subprocess on a tiny model trained once per session
(``tiny_model`` in conftest.py). That model babbles, so with the guard on every line must
come back byte-identical, and with ``--no-guard`` every sentence changes but the layout must
not.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from restorer.batch import (
    FileOutput,
    InputError,
    LineResult,
    Position,
    RestoreOptions,
    plain_diff,
    rich_diff,
    run_restore,
)
from restorer.infer import Explanation, Restorer
from restorer.infer.decoded import Decoded
from restorer.infer.guard import Edit
from restorer.model.device import model_dtype, resolve_device
from restorer.text import document_spans, splice

ROOT = Path(__file__).resolve().parent.parent

# CRLF and LF lines, blank lines, indentation, two sentences on a line, control characters,
# non-ASCII text, and no newline at the end
LAYOUT = (
    "The firm stated final week that youngsters had been glad.\r\n"
    "\r\n"
    "    Indented text here. A second sentence follows it!\n"
    "\n"
    "\t\tTabs, a NUL\x00 and a bell\x07 are kept.   \n"
    "“Curly quotes” — café, naïve, 東京 😀.\n"
    "   \n"
    "The last line has no newline."
).encode()


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "restorer.cli", "restore", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=ROOT,
        env=env or _env(),
        timeout=timeout,
    )


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def ok(r: subprocess.CompletedProcess[bytes]) -> bytes:
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    assert b"Traceback" not in r.stderr
    return r.stdout


def failed(r: subprocess.CompletedProcess[bytes], message: str) -> str:
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, err
    assert "Traceback" not in err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err  # one clear line
    return err


def split_lines(data: bytes) -> list[tuple[str, str]]:
    """``(body, ending)`` per line, ending ``\r\n``, ``\n`` or ``""`` (the last line)."""
    lines = data.decode("utf-8").split("\n")
    out = []
    for k, line in enumerate(lines):
        if k == len(lines) - 1:
            out.append((line, ""))
        elif line.endswith("\r"):
            out.append((line[:-1], "\r\n"))
        else:
            out.append((line, "\n"))
    return out


def assert_same_frame(out: bytes, src: bytes) -> None:
    """Same lines and line endings; blank lines as they were; each line keeps its indentation.

    (Without the guard the model's own text replaces each sentence, and a model may start a
    sentence with a space of its own: so the indentation is checked as a prefix.)"""
    got, want = split_lines(out), split_lines(src)
    assert len(got) == len(want)
    for (g, g_end), (w, w_end) in zip(got, want, strict=True):
        assert g_end == w_end
        if not w.strip():
            assert g == w
        assert g.startswith(w[: len(w) - len(w.lstrip())])


# ----------------------------------------------------------------------------- inputs and outputs


def test_stdin_file_and_output_file_keep_every_byte(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(LAYOUT)
    out = tmp_path / "sub" / "out.txt"
    from_stdin = ok(run("--model", str(tiny_model), stdin=LAYOUT))
    from_dash = ok(run("-", "--model", str(tiny_model), stdin=LAYOUT))
    from_file = ok(run(str(src), "--model", str(tiny_model), "-o", str(out)))
    assert from_stdin == from_dash == out.read_bytes() == LAYOUT  # the guard rejects the babble
    assert from_file == b""
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]  # no partial, no sidecar left


def test_no_guard_changes_sentences_but_not_the_layout(tiny_model: Path, tmp_path: Path) -> None:
    out = ok(run("--model", str(tiny_model), "--no-guard", stdin=LAYOUT))
    assert out != LAYOUT
    assert_same_frame(out, LAYOUT)


def test_several_files_into_one_output(tiny_model: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"First file.\n")
    b.write_bytes(b"Second file, no newline.")
    out = tmp_path / "both.txt"
    ok(run(str(a), str(b), "--model", str(tiny_model), "-o", str(out)))
    assert out.read_bytes() == b"First file.\nSecond file, no newline."


def test_folder_to_folder_mirrors_the_tree(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "a.txt").write_bytes(LAYOUT)
    (src / "deep" / "b.txt").write_bytes(b"One line.\r\n")
    (src / "deep" / "er" / "c.txt").write_bytes(b"")
    (src / "notes.md").write_bytes(b"not a txt file\n")
    out = tmp_path / "out"
    ok(run(str(src), "-o", str(out), "--model", str(tiny_model)))
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.txt", "deep/b.txt", "deep/er/c.txt"]
    for name in written:
        assert (out / name).read_bytes() == (src / name).read_bytes()

    failed(run(str(src), "--model", str(tiny_model)), "needs -o")
    (tmp_path / "file.txt").write_text("x\n")
    failed(run(str(src), "-o", str(tmp_path / "file.txt"), "--model", str(tiny_model)), "is a file")


def test_jsonl_in_and_out(tiny_model: Path, tmp_path: Path) -> None:
    rows = [
        {"id": 1, "text": "The firm stated final week."},
        {"spun": "Youngsters had been glad.", "id": "b"},
    ]
    data = (json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1], ensure_ascii=False) + "\n").encode()
    guarded = [
        json.loads(x)
        for x in ok(run("--format", "jsonl", "--model", str(tiny_model), stdin=data)).splitlines()
        if x.strip()
    ]
    assert [r["id"] for r in guarded] == [1, "b"]  # other keys are carried through
    assert [r["text"] for r in guarded] == ["The firm stated final week.", "Youngsters had been glad."]
    assert all(r["edits"] == [] and r["spin_score"] == 0.0 for r in guarded)
    assert guarded[1]["spun"] == rows[1]["spun"]

    out = tmp_path / "out.jsonl"
    ok(run("-", "--format", "jsonl", "--no-guard", "--model", str(tiny_model), "-o", str(out), stdin=data))
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""  # the blank line stays in place
    raw = json.loads(lines[0])
    assert set(raw) == {"id", "text", "edits", "spin_score"}
    assert raw["edits"] and all(e["accepted"] for e in raw["edits"])
    for e in raw["edits"]:
        assert rows[0]["text"][e["start"] : e["end"]] == e["original"]
        assert set(e) == {"start", "end", "original", "replacement", "confidence", "accepted", "reason"}


def test_explain_writes_plain_markers_when_not_a_terminal(tiny_model: Path, tmp_path: Path) -> None:
    shown = ok(run("--explain", "--no-guard", "--model", str(tiny_model), stdin=LAYOUT)).decode()
    assert "[-" in shown and "{+" in shown and "\x1b[" not in shown
    assert_same_frame(shown.encode(), LAYOUT)
    # dropping the insertions and unwrapping the deletions gives the input back
    assert (
        re.sub(r"\[-(.*?)-\]", r"\1", re.sub(r"\{\+.*?\+\}", "", shown, flags=re.S), flags=re.S).encode()
        == LAYOUT
    )
    out = tmp_path / "explained.txt"
    ok(run("--explain", "--no-guard", "--model", str(tiny_model), "-o", str(out), stdin=LAYOUT))
    assert out.read_bytes().decode("utf-8") == shown
    # with the guard on nothing is accepted: no markers at all
    assert ok(run("--explain", "--model", str(tiny_model), stdin=LAYOUT)) == LAYOUT


def _run_in_pty(args: list[str], stdin: bytes, tty: str) -> tuple[bytes, bytes]:
    """Run ``restorer restore`` with stdout or stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # rows, columns
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, tty: slave}
    proc = subprocess.Popen(
        [sys.executable, "-m", "restorer.cli", "restore", *args],
        stdin=subprocess.PIPE, cwd=ROOT, env={**_env(), "TERM": "xterm"}, **streams,
    )  # fmt: skip
    os.close(slave)
    piped = proc.communicate(stdin, timeout=120)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0, piped
    return seen, piped[0 if tty == "stderr" else 1]


def test_explain_colours_the_diff_on_a_terminal(tiny_model: Path) -> None:
    shown, _ = _run_in_pty(
        ["--explain", "--no-guard", "--model", str(tiny_model)], b"The firm stated it.\n", "stdout"
    )
    assert b"\x1b[" in shown  # ANSI colours
    assert b"[-" not in shown and b"The firm stated it." in shown


def test_progress_bar_on_a_terminal_for_long_inputs(tiny_model: Path) -> None:
    text = "".join(f"Line {i} is short.\n" for i in range(300)).encode()
    bar, out = _run_in_pty(["--model", str(tiny_model)], text, "stderr")
    assert out == text
    assert b"300/300" in bar and b"lines/s" in bar and b"sentences/s" in bar
    short, _ = _run_in_pty(["--model", str(tiny_model)], b"Just one line.\n", "stderr")
    assert short == b""  # silent for short inputs


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_give_one_line_errors_and_no_output(tiny_model: Path, tmp_path: Path) -> None:
    m = ["--model", str(tiny_model)]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("fine line\ncaf\xe9 au lait\n".encode("latin-1"))
    out = tmp_path / "out.txt"
    err = failed(run(str(bad), "-o", str(out), *m), "not UTF-8")
    assert str(bad) in err and "byte 13" in err and "line 2" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]

    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"text": "ok"}\n{"text": "broken"\n')
    err = failed(run(str(jl), "--format", "jsonl", "-o", str(out), *m), f"{jl}:2")
    assert "not valid JSON" in err and not out.exists()
    jl.write_text('{"text": "ok"}\n[1, 2]\n')
    failed(run(str(jl), "--format", "jsonl", *m), f'{jl}:2: expected a JSON object with a "text"')
    assert run(str(jl), "--format", "jsonl", *m).stdout == b""  # nothing half-written on stdout

    failed(run(str(tmp_path / "missing.txt"), *m), "no such file")
    failed(run("--model", str(tmp_path / "no-model"), stdin=b"Some text.\n"), "no model at")
    failed(run("--min-confidence", "2", *m, stdin=b"x\n"), "--min-confidence")
    failed(run("--batch-size", "0", *m, stdin=b"x\n"), "--batch-size")
    failed(run("--resume", *m, stdin=b"x\n"), "--resume needs -o")


def test_empty_input_gives_empty_output(tiny_model: Path, tmp_path: Path) -> None:
    assert ok(run("--model", str(tiny_model), stdin=b"")) == b""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    out = tmp_path / "out.txt"
    ok(run(str(empty), "-o", str(out), "--model", str(tiny_model)))
    assert out.read_bytes() == b""
    assert ok(run("--format", "jsonl", "--model", str(tiny_model), stdin=b"")) == b""


def test_eval_runs_with_and_without_the_guard(tiny_model: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"spun": "The firm stated final week.", "original": "The company said last week."},
        {"spun": "Youngsters had been glad.", "original": "Children were glad."},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cmd = [sys.executable, "-m", "restorer.cli", "eval", "--pairs", str(pairs), "--model", str(tiny_model)]
    results = []
    for extra in ([], ["--no-guard"]):
        r = subprocess.run([*cmd, *extra], capture_output=True, cwd=ROOT, env=_env(), timeout=120)
        results.append(json.loads(ok(r)))
    guarded, raw = results
    assert guarded["repaired"] == 0.0 and guarded["clean_changed"] == 0.0  # nothing accepted: identity
    assert raw["clean_changed"] > 0.0  # the babble, unguarded


# ----------------------------------------------------------------------------- resume


def _progress(sidecar: Path) -> dict[str, Any] | None:
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@pytest.mark.slow
@pytest.mark.parametrize("path", ["seq2seq", "judge", "gate"])
def test_resume_after_sigkill_equals_an_uninterrupted_run(
    tiny_model: Path, tiny_lm: Path, tmp_path: Path, path: str
) -> None:
    """SIGKILL in the middle, then --resume: byte for byte the uninterrupted output, on the
    seq2seq tier, on the judge path (proposals and a judge LM, here a tiny random one), and on
    the judge path with its document gate on (a file's lines are one document, a chunk at a time)."""
    judged = path != "seq2seq"
    n = 2000
    words = "the firm stated final week that youngsters had been glad about a big change".split()
    lines = []
    for i in range(n):
        k = i * 7919 % 13
        lines.append("" if k == 0 else "  " * (k % 3) + " ".join(words[k : k + 2 + k % 5]).capitalize() + ".")
    src = tmp_path / "big.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = tiny_model
    if path == "gate":  # every chunk looks clean to a gate that high: each edit pays 100 more, its
        # cost is then 0, and only the edits the random LM finds likelier survive
        model = tmp_path / "gated"
        shutil.copytree(tiny_model, model)
        judge = {"margin": -100.0, "rounds": 1, "document_spin": 1.01, "document_words": 50, "document_cost": 100.0}
        (model / "restorer.json").write_text(json.dumps({"judge": {"lm": str(tiny_lm), "proposers": ["tables"], "judge": judge}}))
        exp = Restorer.from_pretrained(model, device="cpu", threads=1).explain(lines[:40], together=True)
        assert any(e.reason.startswith("document looks clean") for x in exp for e in x.rejected)
        assert any(x.edits for x in exp), "and some edits pass it"
    args = [str(src), "--model", str(model), "--chunk-lines", "40", "--batch-size", "16"]
    args += ["--judge", str(tiny_lm)] if path == "judge" else [] if path == "gate" else ["--no-guard"]
    env = _env()
    reference = tmp_path / "reference.txt"
    ok(run(*args, "-o", str(reference), env=env))
    if judged:  # the judge really edits these lines: the test would pass vacuously otherwise
        assert reference.read_bytes() != src.read_bytes()

    out = tmp_path / "out.txt"
    sidecar, partial = tmp_path / "out.txt.progress.json", tmp_path / "out.txt.partial"
    cmd = [sys.executable, "-m", "restorer.cli", "restore", *args, "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = _progress(sidecar)
        if state and n // 4 <= state["line"] < n:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not out.exists() and partial.exists()
    state = _progress(sidecar)
    assert state is not None and 0 < state["line"] < n

    with partial.open("ab") as fh:  # as if killed in the middle of writing the next chunk
        fh.write(b"half a chu")
    resumed = run(*args, "-o", str(out), "--resume", env=env)
    ok(resumed)
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists() and not sidecar.exists()
    assert len(out.read_bytes().split(b"\n")) == n + 1


# ----------------------------------------------------------------------------- resume, in process


class StubRestorer:
    """Upper-cases every line; raises on chunk number ``fail_at`` (an interruption)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.seen: list[str] = []
        self.together: list[bool] = []  # per chunk: were its texts one document?

    def explain(self, docs: list[str], together: bool = False) -> list[Explanation]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("interrupted")
        self.seen += docs
        self.together.append(together)
        return [
            Explanation(d.upper(), sentences=[{"start": 0, "end": len(d), "spin_score": 0.0}]) for d in docs
        ]


def _restore(paths: list[str], out: Path, stub: StubRestorer, resume: bool = False, **settings: Any) -> None:
    options = RestoreOptions(resume=resume, chunk_lines=10, settings=settings or {"format": "text"})
    run_restore(paths, str(out), options, load=lambda: stub)  # type: ignore[arg-type, return-value]


def _lines(path: Path, n: int, tag: str = "line") -> list[str]:
    text = [f"{tag} {i}." for i in range(n)]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return text


def test_a_text_files_lines_are_one_document_and_jsonl_records_are_not(tmp_path: Path) -> None:
    """The judge's document gate looks at a text file's lines together (a chunk at a time);
    JSONL records are documents of their own."""
    _lines(tmp_path / "in.txt", 25)
    stub = StubRestorer()
    _restore([str(tmp_path / "in.txt")], tmp_path / "out.txt", stub)
    assert stub.together == [True, True, True]  # chunks of 10 lines
    (tmp_path / "in.jsonl").write_text('{"text": "a b."}\n{"text": "c d."}\n', encoding="utf-8")
    stub = StubRestorer()
    options = RestoreOptions(fmt="jsonl", chunk_lines=10, settings={"format": "jsonl"})
    run_restore([str(tmp_path / "in.jsonl")], str(tmp_path / "out.jsonl"), options, load=lambda: stub)  # type: ignore[arg-type, return-value]
    assert stub.together == [False] and stub.seen == ["a b.", "c d."]


def test_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    text = _lines(tmp_path / "in.txt", 95)
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        _restore([str(tmp_path / "in.txt")], out, StubRestorer(fail_at=4))
    state = json.loads((tmp_path / "out.txt.progress.json").read_text())
    assert state["line"] == 30 and not out.exists()
    assert (tmp_path / "out.txt.partial").read_text().splitlines() == [t.upper() for t in text[:30]]

    with (tmp_path / "out.txt.partial").open("a") as fh:
        fh.write("LINE 30.\nLINE 3")  # a chunk half-written when the run was killed
    stub = StubRestorer()
    _restore([str(tmp_path / "in.txt")], out, stub, resume=True)
    assert stub.seen == text[30:]  # nothing done twice
    assert out.read_text().splitlines() == [t.upper() for t in text]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_without_resume_a_partial_is_started_over(tmp_path: Path) -> None:
    text = _lines(tmp_path / "in.txt", 35)
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        _restore([str(tmp_path / "in.txt")], out, StubRestorer(fail_at=2))
    stub = StubRestorer()
    _restore([str(tmp_path / "in.txt")], out, stub)
    assert stub.seen == text and out.read_text().splitlines() == [t.upper() for t in text]


def test_resume_refuses_a_changed_input_or_other_settings(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    _lines(src, 50)
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        _restore([str(src)], out, StubRestorer(fail_at=3))
    with pytest.raises(InputError, match="other settings"):
        _restore([str(src)], out, StubRestorer(), resume=True, format="text", explain=True)
    _lines(src, 50, tag="LINE")  # same size, other content
    with pytest.raises(InputError, match=r"in.txt changed since the interrupted run \(its content differs\)"):
        _restore([str(src)], out, StubRestorer(), resume=True)
    _lines(src, 51)
    with pytest.raises(InputError, match="changed since the interrupted run"):
        _restore([str(src)], out, StubRestorer(), resume=True)
    with pytest.raises(InputError, match="stdin cannot be resumed"):
        options = RestoreOptions(resume=True, settings={"format": "text"})
        run_restore(["-"], str(out), options, load=StubRestorer, stdin=io.BytesIO(b"x\n"))  # type: ignore[arg-type]


def test_resume_a_folder_skips_the_files_already_done(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    texts = {name: _lines(src / name, 25, tag=name) for name in ("a.txt", "b.txt", "c.txt")}
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        _restore([str(src)], out, StubRestorer(fail_at=5))  # a: 3 chunks, b: 1 done, dies on the 2nd
    assert (out / "a.txt").exists() and (out / "b.txt.partial").exists() and not (out / "c.txt").exists()
    stub = StubRestorer()
    _restore([str(src)], out, stub, resume=True)
    assert stub.seen == texts["b.txt"][10:] + texts["c.txt"]
    for name, text in texts.items():
        assert (out / name).read_text().splitlines() == [t.upper() for t in text]
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt"]


def test_file_output_cuts_back_to_the_last_recorded_chunk(tmp_path: Path) -> None:
    target = tmp_path / "o.txt"
    fp = [{"name": "in", "size": 3, "sha256": "x"}]
    first = FileOutput(target, fp, {"format": "text"})
    assert first.plan(resume=False) == Position()
    first.start()
    first.write([LineResult("A\n"), LineResult("B\n")], Position(0, 2, 4))
    first.abort()
    (tmp_path / "o.txt.partial").write_bytes(b"A\nB\nC-half")
    again = FileOutput(target, fp, {"format": "text"})
    assert again.plan(resume=True) == Position(0, 2, 4)
    again.start()
    again.write([LineResult("C\n")], Position(0, 3, 6))
    again.finish()
    again.cleanup()
    assert target.read_bytes() == b"A\nB\nC\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.txt"]


# ----------------------------------------------------------------------------- explain rendering


def test_diff_rendering() -> None:
    src = "The firm stated it."
    edits = [
        Edit(4, 8, "firm", "company", 0.9),
        Edit(9, 15, "stated", "said", 0.8),
        Edit(15, 15, "", " that", 0.7),
    ]
    assert plain_diff(src, edits) == "The [-firm-]{+company+} [-stated-]{+said+}{+ that+} it."
    assert plain_diff(src, []) == src
    text = rich_diff(src, edits)
    assert text.plain == "The firmcompany statedsaid that it."
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}
    assert styles["firm"] == "red strike" and styles["company"] == "bold green"


# ----------------------------------------------------------------------------- properties of Restorer.restore


@pytest.fixture(scope="module")
def restorer(tiny_model: Path) -> Iterator[Restorer]:
    import torch

    threads = torch.get_num_threads()
    yield Restorer.from_pretrained(tiny_model, device="cpu", threads=1)
    torch.set_num_threads(threads)


WORDS = [
    "the",
    "firm",
    "stated",
    "café",
    "naïve",
    "東京",
    "😀",
    "12",
    "p.c.",
    "Dr.",
    "“quoted”",
    "—",
    "e.g.",
    "U.S.",
]
sentence = st.builds(
    lambda ws, end: " ".join(ws).capitalize() + end,
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=7),
    st.sampled_from([".", "!", "?", "", "...", ".”"]),
)
line = st.builds(
    lambda indent, sents, sep, trail: indent + sep.join(sents) + trail,
    st.sampled_from(["", " ", "    ", "\t", " \t "]),
    st.lists(sentence, min_size=0, max_size=4),
    st.sampled_from([" ", "  ", "\t", " \u00a0 "]),
    st.sampled_from(["", " ", "  \t"]),
)
document = st.builds(
    lambda lines, endings, last: "".join(x + e for x, e in zip(lines, endings, strict=False)) + last,
    st.lists(line, max_size=8),
    st.lists(st.sampled_from(["\n", "\r\n"]), min_size=8, max_size=8),
    st.one_of(st.just(""), line),
)
PROPS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain": it is slow
)


def _gaps(text: str, spans: list[tuple[int, int]]) -> list[str]:
    edges = [0, *(x for span in spans for x in span), len(text)]
    return [text[edges[k] : edges[k + 1]] for k in range(0, len(edges), 2)]


def _per_line(text: str) -> list[int]:
    starts = [0] + [k + 1 for k, c in enumerate(text) if c == "\n"]
    return [
        sum(1 for a, _ in document_spans(text) if s <= a < e)
        for s, e in zip(starts, [*starts[1:], len(text) + 1], strict=True)
    ]


@PROPS
@given(doc=document)
def test_restore_keeps_lines_and_the_text_between_sentences(restorer: Restorer, doc: str) -> None:
    restorer.guard.enabled = True
    out = restorer.restore(doc)
    assert out.count("\n") == doc.count("\n") and out.count("\r\n") == doc.count("\r\n")
    spans = document_spans(doc)
    sents = restorer.restore_sentences([doc[a:b] for a, b in spans])
    assert out == splice(doc, spans, sents)  # everything between the sentences is the input's
    # with the guard on no sentence is dropped or duplicated, and the layout re-splits the same
    assert _per_line(out) == _per_line(doc)
    assert _gaps(out, document_spans(out)) == _gaps(doc, spans)


@PROPS
@given(doc=document)
def test_restore_without_guard_keeps_lines_and_gaps(restorer: Restorer, doc: str) -> None:
    restorer.guard.enabled = False
    try:
        out = restorer.restore(doc)
        spans = document_spans(doc)
        assert out == splice(doc, spans, restorer.restore_sentences([doc[a:b] for a, b in spans]))
        assert out.count("\n") == doc.count("\n")
    finally:
        restorer.guard.enabled = True


@PROPS
@given(doc=st.one_of(document, st.text(max_size=200)))
def test_an_identity_decoder_gives_back_every_byte(
    restorer: Restorer, doc: str, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr(Restorer, "decode", lambda self, sentences: [Decoded(s) for s in sentences])
    assert restorer.restore(doc) == doc
    assert restorer.restore([doc, doc[::-1]]) == [doc, doc[::-1]]
    # and the CLI's line-by-line I/O adds nothing and drops nothing
    data = doc.encode("utf-8")
    capsysbinary.readouterr()
    run_restore(["-"], None, RestoreOptions(chunk_lines=3), load=lambda: restorer, stdin=io.BytesIO(data))
    assert capsysbinary.readouterr().out == data


ADVERSARIAL = {
    "drop": lambda s: "",
    "newline": lambda s: s.replace(" ", "\n", 1),
    "leading space": lambda s: " " + s + " ",
    "babble": lambda s: " ".join(["the"] * 12),
    "duplicate": lambda s: s + " " + s,
}


@pytest.mark.parametrize("kind", list(ADVERSARIAL))
@PROPS
@given(doc=document)
def test_the_guard_never_drops_or_duplicates_a_sentence(
    restorer: Restorer, doc: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a (confident) model writes, the guard keeps every sentence and line."""
    change = ADVERSARIAL[kind]
    monkeypatch.setattr(Restorer, "decode", lambda self, sentences: [Decoded(change(s)) for s in sentences])
    restorer.guard.enabled = True
    out = restorer.restore(doc)
    assert out.count("\n") == doc.count("\n")
    assert _per_line(out) == _per_line(doc)
    assert _gaps(out, document_spans(out)) == _gaps(doc, document_spans(doc))


def test_the_guard_does_not_repeat_a_short_sentence(
    restorer: Restorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Restorer, "decode", lambda self, sentences: [Decoded(f"{s} {s}") for s in sentences])
    restorer.guard.enabled = True
    assert restorer.restore("Thanks. The end.\n") == "Thanks. The end.\n"


# ----------------------------------------------------------------------------- devices


def test_resolve_device_and_dtype_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    assert model_dtype("cpu") == torch.float32
    for bad, message in (
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA"),
        ("mps", "MPS"),
        ("tpu", "unknown device"),
    ):
        with pytest.raises(ValueError, match=message):
            resolve_device(bad)


def test_resolve_device_and_dtype_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"  # CUDA first
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert model_dtype("cuda") == torch.bfloat16 and model_dtype("cuda:1") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert model_dtype("cuda") == torch.float16


def test_resolve_device_and_dtype_with_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps" and resolve_device("mps") == "mps"
    assert model_dtype("mps") == torch.float16
