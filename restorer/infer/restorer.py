"""``Restorer``: load a model directory and restore sentences or whole documents.

The seq2seq model runs on a :class:`~restorer.infer.decoders.Backend` (torch with a
:data:`~restorer.infer.decoders.DECODERS` decoder, or CTranslate2), which ``from_pretrained``
picks; the judge tier (:mod:`restorer.infer.pipeline`), when there is one, chooses among
proposed edits, and the guard (:mod:`restorer.infer.guard`) comes last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, overload

from restorer.infer.decoded import Decoded
from restorer.infer.decoders import Backend, TorchBackend
from restorer.infer.guard import Edit, GuardConfig, Guarded, spin_score
from restorer.infer.styles import load_style_packages
from restorer.model.device import model_dtype, resolve_device
from restorer.text import document_spans, splice, split_long


class ModelNotFoundError(FileNotFoundError):
    """No usable model directory."""


def default_model_dir() -> Path:
    return Path(str(resources.files("restorer").joinpath("checkpoints", "default")))


@dataclass
class Explanation:
    """What ``Restorer.explain`` found in one document."""

    text: str  # the restored document
    edits: list[Edit] = field(default_factory=list)  # applied edits, spans in the input document
    rejected: list[Edit] = field(default_factory=list)  # edits the guard kept as they were
    spin_score: float = 0.0  # share of the document's words that were restored
    sentences: list[dict[str, Any]] = field(default_factory=list)  # start, end, spin_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "edits": [e.to_dict() for e in self.edits],
            "rejected": [e.to_dict() for e in self.rejected],
            "spin_score": self.spin_score,
            "sentences": self.sentences,
        }


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: nothing the model can read
        return False
    return True


class Restorer:
    """Restores spun text with a seq2seq model.

    >>> r = Restorer.from_pretrained()                 # the shipped default model
    >>> r.restore("The firm stated final week that youngsters were glad.")

    With the guard on (the default) only the edits that look like undoing a spinner are
    applied to the input; ``guard=False`` returns the model's greedy decode of each sentence.

    ``seq2seq`` is the :class:`~restorer.infer.decoders.Backend` that decodes sentences;
    ``tokenizer`` (the model's) measures them to cut the long ones.
    """

    def __init__(
        self,
        seq2seq: Backend,
        tokenizer: Any,
        batch_size: int = 32,
        max_new_tokens: int = 128,
        guard: GuardConfig | bool | dict[str, Any] = True,
        max_input_tokens: int = 96,
        judge: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.seq2seq = seq2seq
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.max_input_tokens = max_input_tokens
        self.guard = self._guard_config(guard)
        self.judge = judge  # a restorer.infer.pipeline.JudgeTier, or None: the seq2seq model alone
        # a style's fine-tuned seq2seq model (a Restorer of its own), whose edits the judge weighs
        # next to the base model's
        self.style_decoder: Restorer | None = None

    @staticmethod
    def _guard_config(guard: GuardConfig | bool | dict[str, Any]) -> GuardConfig:
        if isinstance(guard, GuardConfig):
            return guard
        if isinstance(guard, dict):
            return GuardConfig.from_dict(guard)
        return GuardConfig(enabled=bool(guard))

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 32,
        threads: int | None = None,
        guard: GuardConfig | bool | dict[str, Any] = True,
        decoder: str | None = None,
        backend: str = "auto",
        judge: Any = "auto",
        styles: Sequence[str | Path] = (),
    ) -> Restorer:
        """Load a model directory (default: the shipped model).

        ``backend`` is ``torch``, ``ctranslate2`` or ``auto``. ``auto`` runs a CTranslate2
        export on CTranslate2; a transformers directory that holds its own int8 export
        (``DIR/ctranslate2``, as the shipped model does) on CTranslate2 when the device is the
        CPU (same measured quality, several times faster, less memory) and no ``decoder`` is
        asked for; anything else on torch. ``ctranslate2`` also converts a transformers
        directory without an export to int8 once and reuses it from the cache
        (``$RESTORER_CACHE/ctranslate2``, default ``~/.cache/restorer``).

        ``decoder`` (torch backend): ``speculative`` (copy-speculative, the default) or ``greedy``
        (plain ``generate``); both give the same outputs.

        ``judge``: ``auto`` uses the judge the model directory names in ``restorer.json`` (the
        shipped model names SmolLM2-135M: proposals from the inverted spinner tables and the
        seq2seq model, chosen by the LM); ``none`` restores with the seq2seq model alone; a
        known LM name (``restorer models list``) or a directory of a causal LM uses that LM
        with the default judge settings; a ``restorer.infer.pipeline.JudgeSpec`` is used as
        it is. The LM is fetched and cached on first use.

        ``styles``: style packages (``restorer finetune`` output directories), style YAML files
        or built-in style names, combined (:mod:`restorer.infer.styles`). Their dictionaries
        propose to the judge next to the base tables. A style that carries its own fine-tuned
        seq2seq model adds that model's edits to the judge's proposals, and its prior to the
        base model's for the style's candidates alone, so the base keeps what it knew; with
        ``judge="none"`` that model decodes instead of the base. The base model is never changed."""
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from restorer.infer.ct2 import available as ct2_available
        from restorer.infer.ct2 import bundled_export, is_ctranslate2_dir

        hf_logging.disable_progress_bar()
        model_dir = Path(path) if path is not None else default_model_dir()
        if not (model_dir / "config.json").exists():
            hint = (
                ""
                if path is not None
                else " (this install ships no default model yet; pass a model directory)"
            )
            raise ModelNotFoundError(f"no model at {model_dir}{hint}")
        if backend not in ("auto", "torch", "ctranslate2"):
            raise ValueError(f"unknown backend {backend!r}; use auto, torch or ctranslate2")
        packages = load_style_packages(styles) if styles else []
        dev = resolve_device(device)
        own = next((s.model_dir for s in packages if s.model_dir is not None), None)
        tier = _load_judge(model_dir, judge, dev, threads, seq2seq_dir=model_dir, styles=packages)
        if any(s.lexicon is not None for s in packages) and tier is None and own is None:
            raise ValueError(
                "a style's dictionary is used by the judge, and this restorer has none "
                f"({'--judge none' if judge in (None, 'none') else 'the model names no judge'}): "
                "drop --judge none, or use a style that carries its own seq2seq model"
            )
        style_decoder = None
        if own is not None and tier is not None and tier.use_seq2seq:
            # with the judge the base model keeps proposing and vouching; the style's copy only
            # adds its edits (and its prior, JudgeTier.load), so the base cannot forget
            # on the CPU its int8 CTranslate2 export (made once, cached): on torch its decode took
            # 38% of a styled restore of news sentences
            auto_ct2 = backend == "auto" and dev == "cpu" and decoder is None and ct2_available()
            style_decoder = cls.from_pretrained(own, device=dev, batch_size=batch_size, threads=threads, guard=guard,
                                                backend="ctranslate2" if auto_ct2 else backend, judge="none")  # fmt: skip
        elif own is not None:
            model_dir = own  # the seq2seq model alone (--judge none): the style's copy decodes
        is_ct2 = is_ctranslate2_dir(model_dir)
        if backend == "auto":
            backend = "ctranslate2" if is_ct2 else "torch"
            if not is_ct2 and dev == "cpu" and decoder is None and ct2_available():
                bundled = bundled_export(model_dir)  # hashes the weights: only when it could be used
                if bundled is not None:
                    backend, model_dir, is_ct2 = "ctranslate2", bundled, True
        if backend == "torch" and is_ct2:
            raise ValueError(f"{model_dir} is a CTranslate2 export; it cannot run on the torch backend")
        if backend == "ctranslate2" and not is_ct2:  # convert once (int8), then reuse the cached export
            from restorer.infer.ct2 import cached_export

            model_dir = bundled_export(model_dir) or cached_export(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        seq2seq: Backend
        if backend == "ctranslate2":
            from restorer.infer.ct2 import CT2Backend, load_translator

            seq2seq = CT2Backend(load_translator(model_dir, dev, threads), tokenizer)
        else:
            import torch
            from transformers import T5ForConditionalGeneration

            if dev == "cpu" and threads:
                torch.set_num_threads(threads)
            model = T5ForConditionalGeneration.from_pretrained(str(model_dir), dtype=model_dtype(dev))
            model.to(dev).eval()
            seq2seq = TorchBackend(model, tokenizer, decoder or "speculative", dev)
        out = cls(seq2seq, tokenizer, batch_size, guard=guard, judge=tier)
        out.style_decoder = style_decoder
        return out

    # ------------------------------------------------------------------ sentences
    def _too_long(self, s: str) -> bool:
        return len(self.tokenizer(s, add_special_tokens=True)["input_ids"]) > self.max_input_tokens

    def decode(self, sentences: Sequence[str]) -> list[Decoded]:
        """The model's greedy decode of each stripped sentence, with token probabilities.

        Sentences longer than the model's limit are cut at safe points, decoded piece by piece
        and joined back with their own spacing. Empty sentences and text the tokenizer cannot
        read (lone surrogates) come back unchanged with full confidence.
        """
        readable = [s for s in sentences if s.strip() and _encodable(s)]
        # one batched tokenization finds the long ones; only those are cut (and re-measured)
        lengths = iter(len(x) for x in self.tokenizer(readable)["input_ids"]) if readable else iter(())
        pieces: list[str] = []
        plan: list[list[tuple[int, int]] | None] = []
        for s in sentences:
            if not s.strip() or not _encodable(s):
                plan.append(None)
                continue
            spans = split_long(s, self._too_long) if next(lengths) > self.max_input_tokens else [(0, len(s))]
            plan.append(spans)
            pieces.extend(s[a:b] for a, b in spans)
        decoded = iter(self.seq2seq.decode(pieces, self.batch_size, self.max_new_tokens))
        out: list[Decoded] = []
        for s, spans in zip(sentences, plan, strict=True):
            if spans is None:
                out.append(Decoded(s))
                continue
            parts = [next(decoded) for _ in spans]
            if len(parts) == 1:
                out.append(parts[0])
                continue
            text, ids, probs, tspans = "", [], [], []
            for k, ((a, _b), d) in enumerate(zip(spans, parts, strict=True)):
                if k:
                    text += s[spans[k - 1][1] : a]  # the gap between the pieces, as it was
                off = len(text)
                text += d.text
                ids += d.token_ids
                probs += d.token_probs
                tspans += [(x + off, y + off) for x, y in d.token_spans]
            out.append(Decoded(text, ids, probs, tspans))
        return out

    @property
    def backend(self) -> str:
        """The seq2seq backend's name: ``torch`` or ``ctranslate2``."""
        return self.seq2seq.name

    def explain_sentences(self, sentences: Sequence[str], documents: Sequence[int] | None = None) -> list[Guarded]:
        """Decode and guard stripped sentences: the text to output plus every edit.
        ``documents`` numbers the document of each sentence, for the judge's document gate
        (None: each sentence stands alone)."""
        from restorer.infer.guard import guard_sentence

        if documents is not None and len(documents) != len(sentences):
            raise ValueError(f"{len(documents)} document numbers for {len(sentences)} sentences")
        if self.judge is not None:
            decodes = self.decode(sentences) if self.judge.use_seq2seq else None
            extra = [self.style_decoder.decode(sentences)] if self.style_decoder is not None and decodes else []
            return self.judge.explain(sentences, decodes, self.guard, documents, extra)
        return [guard_sentence(s, d, self.guard) for s, d in zip(sentences, self.decode(sentences), strict=True)]

    def restore_sentences(self, sentences: Sequence[str]) -> list[str]:
        """Restore stripped sentences; empty ones come back empty."""
        if not self.guard.enabled and self.judge is None:
            return [d.text.strip() if s.strip() else s for s, d in zip(sentences, self.decode(sentences), strict=True)]
        return [g.text for g in self.explain_sentences(sentences)]

    # ------------------------------------------------------------------ documents
    def explain_documents(self, texts: Sequence[str], together: bool = False) -> list[Explanation]:
        """Restore documents sentence by sentence (batched across all of them), keeping every
        byte between the sentences, and report the edits with spans in each document.

        The judge's document gate looks at each text as a document of its own; ``together``:
        at all of them as parts of one (the lines of a text file)."""
        spans = [document_spans(t) for t in texts]
        flat = [t[a:b] for t, sp in zip(texts, spans, strict=True) for a, b in sp]
        docs = [0 if together else k for k, sp in enumerate(spans) for _ in sp]
        guarded = iter(self.explain_sentences(flat, docs))
        out: list[Explanation] = []
        for t, sp in zip(texts, spans, strict=True):
            gs = [next(guarded) for _ in sp]
            edits = [e.shifted(a) for (a, _b), g in zip(sp, gs, strict=True) for e in g.edits]
            out.append(
                Explanation(
                    text=splice(t, sp, [g.text for g in gs]),
                    edits=[e for e in edits if e.accepted or (not self.guard.enabled and self.judge is None)],
                    rejected=[e for e in edits if not e.accepted and (self.guard.enabled or self.judge is not None)],
                    spin_score=spin_score(gs),
                    sentences=[
                        {"start": a, "end": b, "spin_score": g.spin_score} for (a, b), g in zip(sp, gs, strict=True)
                    ],
                )
            )
        return out

    def restore_documents(self, texts: Sequence[str], together: bool = False) -> list[str]:
        return [e.text for e in self.explain_documents(texts, together)]

    @overload
    def restore(self, text: str, together: bool = False) -> str: ...
    @overload
    def restore(self, text: list[str], together: bool = False) -> list[str]: ...
    def restore(self, text: str | list[str], together: bool = False) -> str | list[str]:
        """A document in, a document out; or a list in, a list of the same length out. A list's
        texts are documents of their own, or with ``together`` parts of one (the lines of a
        file): the judge's document gate looks at the whole (see ``explain_documents``)."""
        if isinstance(text, str):
            return self.restore_documents([text])[0]
        return self.restore_documents(_check_list(text), together)

    @overload
    def explain(self, text: str, together: bool = False) -> Explanation: ...
    @overload
    def explain(self, text: list[str], together: bool = False) -> list[Explanation]: ...
    def explain(self, text: str | list[str], together: bool = False) -> Explanation | list[Explanation]:
        """Edits (character spans in the input, original, replacement, confidence) and spin
        scores per sentence and for the whole document; ``together`` as for ``restore``."""
        if isinstance(text, str):
            return self.explain_documents([text])[0]
        return self.explain_documents(_check_list(text), together)


def _load_judge(model_dir: Path, judge: Any, device: str, threads: int | None,
                seq2seq_dir: Path | None = None, styles: Sequence[Any] = ()) -> Any:  # fmt: skip
    """The judge tier ``judge`` asks for (see ``Restorer.from_pretrained``), or None."""
    if judge is None or judge == "none":
        return None
    from restorer.infer.pipeline import JudgeSpec, JudgeSpecError, JudgeTier, read_judge_spec

    try:
        if isinstance(judge, JudgeSpec):
            spec = judge
        elif judge == "auto":
            spec = read_judge_spec(model_dir)
            if spec is None:
                return None
        else:
            spec = JudgeSpec(lm=judge)
    except JudgeSpecError as exc:
        raise ValueError(str(exc)) from None
    if device == "cpu" and threads:
        import torch

        torch.set_num_threads(threads)
    return JudgeTier.load(spec, device, seq2seq_dir=seq2seq_dir or model_dir, styles=styles, model_dir=model_dir)


def _check_list(text: Any) -> list[str]:
    if not isinstance(text, list | tuple) or not all(isinstance(t, str) for t in text):
        raise TypeError("expected a str or a list of str")
    return list(text)
