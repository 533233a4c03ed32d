"""Run the app under uvicorn: one process, or several workers that share the port."""

from __future__ import annotations

import os
import signal
from types import FrameType

from restorer.serving.config import ServeConfig


def run(config: ServeConfig) -> int:
    """Serve until SIGTERM or SIGINT; SIGTERM drains the requests in flight and returns 0."""
    import uvicorn

    options = dict(
        host=config.host, port=config.port, log_level=config.log_level, access_log=False,
        timeout_graceful_shutdown=config.graceful_timeout_s or None, lifespan="on",
    )  # fmt: skip
    # uvicorn re-raises the signal it caught once it has shut down; this handler makes that a
    # clean exit (status 0) instead of death by SIGTERM.
    signal.signal(signal.SIGTERM, _stopped)
    if config.workers > 1:
        os.environ.update(config.to_env())  # the workers rebuild the configuration from it
        uvicorn.run("restorer.serving.app:app_from_env", factory=True, workers=config.workers, **options)
    else:
        from restorer.serving.app import create_app

        uvicorn.run(create_app(config), **options)
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    pass
