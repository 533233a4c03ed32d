"""The `restorer` command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "examples" / "article.txt"


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "restorer.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd or ROOT,
        timeout=120,
    )


def test_spin_file_is_deterministic_and_keeps_layout(tmp_path: Path) -> None:
    a = run("spin", str(ARTICLE), "--style", "autoblog", "--seed", "3")
    b = run("spin", str(ARTICLE), "--style", "autoblog", "--seed", "3")
    c = run("spin", str(ARTICLE), "--style", "autoblog", "--seed", "4")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout != c.stdout
    src = ARTICLE.read_text(encoding="utf-8").splitlines()
    out = a.stdout.decode().splitlines()
    assert len(out) == len(src)
    for s, o in zip(src, out, strict=True):
        assert (s == "") == (o == "")
        assert len(s) - len(s.lstrip()) == len(o) - len(o.lstrip())  # indentation kept
    assert a.stdout.decode() != ARTICLE.read_text(encoding="utf-8")


def test_spin_pairs_out_and_output_file(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    out = tmp_path / "spun.txt"
    r = run(
        "spin", str(ARTICLE), "--style", "mixed", "--seed", "1", "--pairs-out", str(pairs), "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in pairs.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 8
    for row in rows:
        assert set(row) >= {"spun", "original", "edits", "style"}
        for e in row["edits"]:
            assert row["original"][e["start"] : e["end"]] == e["original"]
            assert row["spun"][e["spun_start"] : e["spun_end"]] == e["replacement"]
    assert all(row["original"] in ARTICLE.read_text(encoding="utf-8") for row in rows)
    assert out.read_text(encoding="utf-8").count("\n") == ARTICLE.read_text(encoding="utf-8").count("\n")


def test_spin_stdin_rate_and_user_style(tmp_path: Path) -> None:
    text = "The company said last week that children were playing a new game.\n"
    r0 = run("spin", "--rate", "0", "--style", "thesaurus", stdin=text.encode())
    assert r0.returncode == 0 and r0.stdout.decode() == text
    style = tmp_path / "mine.yaml"
    dictionary = tmp_path / "mine.txt"
    dictionary.write_text("company|firm\nchild|youngster\n")
    style.write_text(
        f"base: autoblog\nrate: 1.0\ncoverage: 1.0\ndictionaries: [{dictionary.name}]\ndictionary_only: true\n"
    )
    r = run("spin", "-", "--style", str(style), stdin=text.encode())
    assert r.returncode == 0, r.stderr
    assert "firm" in r.stdout.decode() and "youngsters" in r.stdout.decode()


def test_spin_jsonl_format() -> None:
    r = run("spin", "--format", "jsonl", stdin=b"One sentence here. Another sentence there.\n")
    rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [row["original"] for row in rows] == ["One sentence here.", "Another sentence there."]


def test_spin_bad_inputs_get_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    cases = [
        (("spin", str(tmp_path / "missing.txt")), "no such file"),
        (("spin", str(bad)), "not UTF-8"),
        (("spin", str(ARTICLE), "--style", "nope"), "unknown style"),
        (("spin", str(ARTICLE), "--rate", "3"), "--rate"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.returncode == 2, args
        assert message in r.stderr.decode(), r.stderr
        assert b"Traceback" not in r.stderr


def test_styles_lists_builtin_styles() -> None:
    r = run("styles")
    assert r.returncode == 0
    for name in ("autoblog", "thesaurus", "mixed"):
        assert name in r.stdout.decode()
