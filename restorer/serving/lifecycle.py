"""The model's lifecycle: load it in the background, say when it is ready, run it, drain it.

``ServerState`` holds one app's model (behind the dynamic batcher, ``restorer.serving.batcher``)
and its metrics: the model loads in a thread at startup, ``ready`` turns true once it is
there, and ``close`` lets the queued requests finish before the worker stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from restorer.serving.batcher import Batcher, QueueTimeout, RestorerLike, Unavailable
from restorer.serving.errors import APIError
from restorer.serving.monitoring import Metrics
from restorer.serving.settings import ServeConfig

log = logging.getLogger("restorer.serve")

Loader = Callable[[], RestorerLike]


class ServerState:
    """The model, its batcher and the metrics of one app."""

    def __init__(self, config: ServeConfig, loader: Loader, metrics: Metrics) -> None:
        self.config = config
        self.loader = loader
        self.metrics = metrics
        self.batcher: Batcher | None = None
        self.load_error: str | None = None
        self._lock = threading.Lock()
        self._closing = False

    @property
    def ready(self) -> bool:
        return self.batcher is not None and getattr(self.batcher.restorer, "ready", True)

    def start_loading(self) -> None:
        threading.Thread(target=self._load, name="restorer-load", daemon=True).start()

    def _load(self) -> None:
        start = time.monotonic()
        try:
            restorer = self.loader()
        except Exception as exc:
            self.load_error = f"the model failed to load: {type(exc).__name__}: {exc}"
            log.error("model load failed", extra={"fields": {"error": self.load_error}})
            return
        cfg = self.config
        batcher = Batcher(
            restorer, cfg.max_batch_size, cfg.max_wait_ms / 1000, cfg.queue_timeout_s, cfg.max_queue,
            observer=self.metrics,
        )  # fmt: skip
        with self._lock:
            if self._closing:
                return
            batcher.start()
            self.batcher = batcher
        self.metrics.ready.set(1)
        log.info("model loaded", extra={"fields": {"seconds": round(time.monotonic() - start, 3)}})

    def close(self) -> None:
        """Finish the queued requests and stop the inference worker."""
        with self._lock:
            self._closing = True
            batcher = self.batcher
        if batcher is not None:
            batcher.close(timeout=self.config.graceful_timeout_s or None)
            close = getattr(batcher.restorer, "close", None)  # a model process
            if close is not None:
                close()

    async def run(self, texts: list[str], explain: bool = False) -> list[Any]:
        if self.batcher is None:
            raise APIError(503, self.load_error or "the model is still loading; try again shortly",
                           headers={"Retry-After": "1"})  # fmt: skip
        try:
            return await self.batcher.submit(texts, explain)
        except QueueTimeout as exc:
            self.metrics.queue_timeouts.inc()
            raise APIError(503, str(exc), limit="queue_timeout_s", headers={"Retry-After": "1"}) from None
        except Unavailable as exc:
            raise APIError(503, str(exc), headers={"Retry-After": "1"}) from None
        except Exception as exc:
            raise APIError(500, f"restoring failed: {type(exc).__name__}: {str(exc)[:300]}") from None


def default_loader(config: ServeConfig) -> Loader:
    def load() -> RestorerLike:
        if config.model_process:
            from restorer.serving.model_process import ModelProcess

            return ModelProcess(config)
        from restorer.infer import Restorer

        return Restorer.from_pretrained(
            config.model, device=config.device, batch_size=config.decode_batch_size,
            threads=config.threads, guard=config.guard_config(), backend=config.backend, judge=config.judge,
            styles=config.style_list(),
        )  # fmt: skip

    return load
