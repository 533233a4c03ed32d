"""Run the app under uvicorn: one process, or several workers that share the port."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType

from restorer.serving.monitoring import MULTIPROC_ENV
from restorer.serving.settings import ServeConfig


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
    multi = config.workers > 1
    metrics_dir, ours = _metrics_dir(multi)  # several workers, or a folder given by the environment
    try:
        if multi:
            os.environ.update(config.to_env())  # the workers rebuild the configuration from it
            uvicorn.run("restorer.serving.app:app_from_env", factory=True, workers=config.workers, **options)
        else:
            from restorer.serving.app import create_app

            uvicorn.run(create_app(config), **options)
    finally:
        if ours and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
    return 0


def _metrics_dir(multi: bool) -> tuple[Path | None, bool]:
    """The folder where the workers' metrics meet: ``PROMETHEUS_MULTIPROC_DIR`` if set (emptied of
    an earlier run's files, as prometheus_client requires), else, for several workers, a fresh
    temporary folder (ours to remove), else None. Returns the folder and whether we made it."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given and not multi:
        return None, False
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.db"):
            old.unlink()
        return folder, False
    folder = Path(tempfile.mkdtemp(prefix="restorer-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder, True


def _stopped(signum: int, frame: FrameType | None) -> None:
    pass
