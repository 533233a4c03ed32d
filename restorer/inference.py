"""The old home of ``Restorer`` (now :mod:`restorer.infer.restorer`), kept for existing imports
such as ``from restorer.inference import Restorer``. New code: ``from restorer import Restorer``
or ``from restorer.infer import Restorer``."""

from __future__ import annotations

from restorer.infer.restorer import Explanation, ModelNotFoundError, Restorer, default_model_dir
from restorer.model.device import model_dtype, resolve_device

__all__ = ["Explanation", "ModelNotFoundError", "Restorer", "default_model_dir", "model_dtype", "resolve_device"]
