"""Inference: from spun text to restored text.

The rooms, in the order the data goes through them:

* :mod:`.proposals`: candidate edits, cheap and with high recall (the inverted spinner tables
  and styles, the seq2seq model's edits), each tagged with its source;
* :mod:`.decoded`, :mod:`.drafting`, :mod:`.decoders`, :mod:`.lean`, :mod:`.ct2`: the seq2seq
  model's decoders (reference greedy, copy-speculative on a lean T5 runtime, CTranslate2) and
  the two ``Backend`` objects that run them (torch and CTranslate2);
* :mod:`.lm`, :mod:`.judge`, :mod:`.seq2seq_prior`, :mod:`.pipeline`: the pretrained causal LM
  that scores sentences, and the judge that keeps an edit when the LM gain beats its margin;
* :mod:`.guard`: the faithfulness guard, last and absolute;
* :mod:`.restorer`: ``Restorer``, which puts them together for sentences and documents.

This package's own namespace is the public API (what ``restorer.serving`` may use), imported
lazily so that ``import restorer.infer`` stays cheap (no torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from restorer.infer.decoded import Decoded
    from restorer.infer.guard import Edit, GuardConfig, Guarded
    from restorer.infer.restorer import Explanation, ModelNotFoundError, Restorer, default_model_dir

_PUBLIC = {
    "Restorer": "restorer.infer.restorer",
    "Explanation": "restorer.infer.restorer",
    "ModelNotFoundError": "restorer.infer.restorer",
    "default_model_dir": "restorer.infer.restorer",
    "GuardConfig": "restorer.infer.guard",
    "Edit": "restorer.infer.guard",
    "Guarded": "restorer.infer.guard",
    "Decoded": "restorer.infer.decoded",
}

__all__ = [
    "Decoded",
    "Edit",
    "Explanation",
    "GuardConfig",
    "Guarded",
    "ModelNotFoundError",
    "Restorer",
    "default_model_dir",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'restorer.infer' has no attribute {name!r}")
