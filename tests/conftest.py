"""Shared fixtures: a tiny model trained once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_training import make_corpus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory from a few seconds of tiny-config training on one CPU thread.

    It restores nothing well (it babbles), which is what the I/O tests want: its edits are
    long and unsure, so the guard rejects them, and ``--no-guard`` shows them."""
    import torch

    from restorer.config import load_config
    from restorer.training import train

    root = tmp_path_factory.mktemp("tiny_model")
    corpus = make_corpus(root / "corpus", n_train=200, n_valid=16)
    overrides = [
        f"data.corpus_dir={corpus}",
        f"train.output_dir={root / 'run'}",
        "train.max_steps=60",
        "train.eval_every=0",
        "train.log_every=1000",
        "train.threads=1",
    ]
    threads = torch.get_num_threads()
    try:
        train(load_config(ROOT / "configs" / "tiny.yaml", overrides))
    finally:
        torch.set_num_threads(threads)
    return root / "run" / "final"
