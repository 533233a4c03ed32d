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

    from restorer.train.config import load_config
    from restorer.train.loop import train

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


TINY_LM_TEXT = [
    "The company said last week that children were happy.",
    "The firm stated final week that youngsters had been glad.",
    "People and folks visit the city because of its history.",
    "According to the report, the government will act in order to help.",
]


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama-style causal LM with a byte-level BPE tokenizer (any text
    tokenizes), saved as a transformers directory: the judge's LM in the tests."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_lm")
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tk.train_from_iterator(TINY_LM_TEXT * 4, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    config = LlamaConfig(
        vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
