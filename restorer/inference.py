"""``Restorer``: load a model directory and restore sentences or whole documents."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, overload

from restorer.text import map_sentences


class ModelNotFoundError(FileNotFoundError):
    """No usable model directory."""


def default_model_dir() -> Path:
    return Path(str(resources.files("restorer").joinpath("checkpoints", "default")))


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for, but MPS is not available")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


class Restorer:
    """Restores spun text with a seq2seq model.

    >>> r = Restorer.from_pretrained()                 # the shipped default model
    >>> r.restore("The firm stated final week that youngsters were glad.")
    """

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu", batch_size: int = 32,
                 max_new_tokens: int = 128) -> None:  # fmt: skip
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "auto", batch_size: int = 32,
                        threads: int | None = None) -> Restorer:  # fmt: skip
        import torch
        from transformers import AutoTokenizer, T5ForConditionalGeneration
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model_dir = Path(path) if path is not None else default_model_dir()
        if not (model_dir / "config.json").exists():
            hint = (
                ""
                if path is not None
                else " (this install ships no default model yet; pass a model directory)"
            )
            raise ModelNotFoundError(f"no model at {model_dir}{hint}")
        dev = resolve_device(device)
        if dev == "cpu" and threads:
            torch.set_num_threads(threads)
        if dev.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif dev == "mps":
            dtype = torch.float16
        else:
            dtype = torch.float32  # fp16 weights on disk are upcast: CPU kernels want fp32
        model = T5ForConditionalGeneration.from_pretrained(str(model_dir), dtype=dtype)
        model.to(dev).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        return cls(model, tokenizer, dev, batch_size)

    # ------------------------------------------------------------------ restoring
    def restore_sentences(self, sentences: Sequence[str]) -> list[str]:
        """Restore stripped sentences; empty ones come back empty."""
        from restorer.generation import greedy_restore

        todo = [i for i, s in enumerate(sentences) if s.strip()]
        outs = greedy_restore(
            self.model, self.tokenizer, [sentences[i] for i in todo], self.batch_size, self.max_new_tokens
        )
        result = list(sentences)
        for i, o in zip(todo, outs, strict=True):
            result[i] = o
        return result

    def restore_documents(self, texts: Sequence[str]) -> list[str]:
        """Restore documents sentence by sentence (batched across all of them), keeping each
        document's layout byte for byte."""
        sentences: list[str] = []
        for t in texts:
            map_sentences(t, lambda s, _i, _k: sentences.append(s) or s)
        restored = iter(self.restore_sentences(sentences))
        return [map_sentences(t, lambda _s, _i, _k: next(restored)) for t in texts]

    @overload
    def restore(self, text: str) -> str: ...
    @overload
    def restore(self, text: list[str]) -> list[str]: ...
    def restore(self, text: str | list[str]) -> str | list[str]:
        """A document in, a document out; or a list in, a list of the same length out."""
        if isinstance(text, str):
            return self.restore_documents([text])[0]
        if not isinstance(text, list | tuple) or not all(isinstance(t, str) for t in text):
            raise TypeError("restore() takes a str or a list of str")
        return self.restore_documents(list(text))
