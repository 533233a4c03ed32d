"""The model in a child process, so that its death does not take the server with it.

A model process can die under the server: the kernel's OOM killer, a crash in a native library
(torch, CTranslate2), an operator's ``kill``. With the model in the server's own process, every
client in flight would then see its connection reset. ``ModelProcess`` runs
``Restorer.from_pretrained`` in a spawned child and sends it the batcher's batches over a pipe:

* if the child dies during a batch, that batch's requests get ``WorkerLost`` (an HTTP 503 with
  ``Retry-After``), and a new child is started at once;
* while it loads, requests get 503 with ``Retry-After`` and ``/v2/health/ready`` says 503;
* an error inside the model (an exception, not a death) comes back as ``ModelError`` for the
  batcher to handle as before (the batch is re-run request by request).

The child ignores SIGINT (the server decides when to stop) and exits when its pipe closes, so it
never outlives the server, even one that is SIGKILLed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from restorer.serving.batcher import Unavailable
from restorer.serving.settings import ServeConfig

log = logging.getLogger("restorer.serve")


class WorkerLost(Unavailable):
    """The model process died while it held the request."""


class ModelError(RuntimeError):
    """The model raised an exception (the child carries on)."""


def _child(conn: Connection, config: ServeConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from restorer.infer import Restorer

        restorer = Restorer.from_pretrained(
            config.model, device=config.device, batch_size=config.decode_batch_size,
            threads=config.threads, guard=config.guard_config(), backend=config.backend, judge=config.judge,
            styles=config.style_list(),
        )  # fmt: skip
    except Exception as exc:  # the parent reports it as the load error
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            op, texts = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        try:
            fn = restorer.explain_documents if op == "explain" else restorer.restore_documents
            reply: tuple[str, Any] = ("ok", list(fn(texts)))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:500]}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class ModelProcess:
    """A ``Restorer`` in a child process, restarted when it dies (the batcher's ``RestorerLike``)."""

    def __init__(self, config: ServeConfig, load_timeout_s: float = 900.0) -> None:
        self.config = config
        self.load_timeout_s = load_timeout_s
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._lock = threading.Lock()  # one batch at a time through the pipe
        self._proc: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._closed = False
        self.restarts = 0
        self._start()  # the first load: a failure is the server's load error

    # ------------------------------------------------------------------ lifecycle
    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> tuple[Any, Connection]:
        """A new child, loaded: ``(process, pipe)``."""
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_child, args=(child, self.config), name="restorer-model", daemon=False)
        start = time.monotonic()
        proc.start()
        child.close()
        if not parent.poll(self.load_timeout_s):
            proc.kill()
            raise RuntimeError(f"the model process did not load in {self.load_timeout_s:g} s")
        try:
            kind, info = parent.recv()
        except (EOFError, OSError):
            proc.join(5)
            raise RuntimeError(f"the model process died while loading (exit code {proc.exitcode})") from None
        if kind != "ready":
            proc.join(5)
            raise RuntimeError(str(info))
        log.info("model process ready",
                 extra={"fields": {"pid": info, "seconds": round(time.monotonic() - start, 3)}})  # fmt: skip
        return proc, parent

    def _start(self) -> None:
        proc, conn = self._spawn()
        with self._lock:
            if self._closed:
                conn.close()
                proc.kill()
                return
            self._proc, self._conn, self._ready = proc, conn, True

    def _restart(self) -> None:
        """Start a new child in the background (the old one is dead)."""

        def run() -> None:
            delay = 1.0
            while not self._closed:
                try:
                    self._start()
                    self.restarts += 1
                    return
                except Exception as exc:
                    log.error("model process restart failed", extra={"fields": {"error": str(exc)}})
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)

        threading.Thread(target=run, name="restorer-model-restart", daemon=True).start()

    def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        self._ready = False
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            if self._proc is not None:
                self._proc.join(timeout)  # the child exits when its pipe closes
                if self._proc.is_alive():
                    self._proc.kill()
                    self._proc.join()

    # ------------------------------------------------------------------ calls
    def restore_documents(self, texts: Sequence[str]) -> list[str]:
        return self._call("restore", texts)

    def explain_documents(self, texts: Sequence[str]) -> list[Any]:
        return self._call("explain", texts)

    def _call(self, op: str, texts: Sequence[str]) -> list[Any]:
        if not self._ready:
            raise Unavailable("the model process is restarting; try again shortly")
        with self._lock:
            proc, conn = self._proc, self._conn
            assert proc is not None and conn is not None
            try:
                conn.send((op, list(texts)))
                kind, payload = conn.recv()
            except (EOFError, OSError):
                self._ready = False
                conn.close()
                proc.join(5)
                code = proc.exitcode
                lost = f"the model process died (exit code {code}) while restoring; try again shortly"
                log.error("model process died", extra={"fields": {"pid": proc.pid, "exit_code": code}})
                if not self._closed:
                    self._restart()
                raise WorkerLost(lost) from None
        if kind == "error":
            raise ModelError(payload)
        return payload
