"""The walls between restorer's rooms (docs/architecture.md): the import-linter contracts in
pyproject.toml hold, and a broken wall fails with a message that names its contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root`` with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")]))}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", code, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_walls_hold() -> None:
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("spin/styles.py", "import torch", "corpus and spin never import torch or transformers"),
        ("infer/judge.py", "from restorer.data import read_pairs", "infer never imports train or data"),
        ("serving/logs.py", "from restorer.infer.guard import GuardConfig", "serving reaches only infer's public API"),
        ("train/csvlog.py", "import argparse", "only the CLI parses arguments"),
        ("infer/lean.py", "from restorer.infer.decoders import DECODERS", "no import cycles inside a room"),
        ("model/t5.py", "from restorer.train.config import RunConfig", "the data path: each room imports only"),
    ],
)
def test_a_broken_wall_names_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    def sources_only(folder: str, names: list[str]) -> list[str]:  # the modules, not the model or the tables
        return [n for n in names if n == "checkpoints" or (Path(folder, n).is_file() and not n.endswith(".py"))]

    shutil.copytree(ROOT / "restorer", tmp_path / "restorer", ignore=sources_only)
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "restorer" / module, "a", encoding="utf-8") as fh:
        fh.write(f"\n{line}  # noqa: E402, F401  (a wall broken on purpose)\n")
    r = lint_imports(tmp_path)
    assert r.returncode != 0
    broken = r.stdout.split("Broken contracts", 1)[-1]
    assert contract in " ".join(broken.split()), r.stdout
