"""``restorer serve``: an HTTP model server (KServe v2 / Open Inference Protocol and ``/v1/restore``).

>>> from restorer.serving import ServeConfig, create_app
>>> app = create_app(ServeConfig(model="runs/default/best"))   # an ASGI app for any server

Needs FastAPI, uvicorn and prometheus_client (installed with restorer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restorer.serving.settings import ServeConfig

__all__ = ["Batcher", "ServeConfig", "create_app"]

if TYPE_CHECKING:
    from restorer.serving.app import create_app
    from restorer.serving.batcher import Batcher


def __getattr__(name: str) -> Any:
    # lazy: the CLI reads the configuration before it imports FastAPI
    if name == "create_app":
        from restorer.serving.app import create_app

        return create_app
    if name == "Batcher":
        from restorer.serving.batcher import Batcher

        return Batcher
    raise AttributeError(f"module 'restorer.serving' has no attribute {name!r}")
