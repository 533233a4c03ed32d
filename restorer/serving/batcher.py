"""Dynamic batching: gather concurrent requests into batches for one inference thread.

Handlers on the event loop ``await batcher.submit(texts)``. One worker thread takes the
oldest request, waits up to ``max_wait_s`` (from that request's arrival) for more, runs up to
``max_batch_size`` texts through the model at once and hands each request its own results,
in its own order. The event loop never runs the model.

A request still in the queue after ``queue_timeout_s`` is withdrawn with ``QueueTimeout``.
If a batch raises, each of its requests is run again alone, so only the request that fails
on its own gets the error; the worker keeps going. ``close()`` refuses new requests, finishes
every queued one and stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("restorer.serve")


class RestorerLike(Protocol):
    """What the batcher needs of a model (``restorer.infer.Restorer`` has it)."""

    def restore_documents(self, texts: Sequence[str]) -> list[str]: ...

    def explain_documents(self, texts: Sequence[str]) -> list[Any]: ...


class BatchObserver(Protocol):
    """Receives the batcher's measurements (``restorer.serving.monitoring.Metrics`` is one)."""

    def batch_done(self, n_texts: int, seconds: float, failed: bool) -> None: ...

    def queue_depth(self, n_texts: int) -> None: ...


class Unavailable(Exception):
    """The request cannot be queued or waited too long: an HTTP 503."""


class QueueTimeout(Unavailable):
    pass


class QueueFull(Unavailable):
    pass


class ShuttingDown(Unavailable):
    pass


@dataclass(eq=False)
class _Job:
    texts: list[str]
    explain: bool
    future: asyncio.Future[list[Any]]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)
    taken: bool = False  # the worker has it: it is no longer in the queue


class Batcher:
    def __init__(
        self,
        restorer: RestorerLike,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        queue_timeout_s: float = 30.0,
        max_queue: int = 4096,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.restorer = restorer
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_timeout_s = queue_timeout_s
        self.max_queue = max_queue
        self.observer = observer
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="restorer-inference", daemon=True)

    # ------------------------------------------------------------------ event-loop side
    def start(self) -> None:
        self._thread.start()

    async def submit(self, texts: Sequence[str], explain: bool = False) -> list[Any]:
        """The restored texts (``explain``: ``Explanation`` objects), in the order given."""
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(list(texts), explain, loop.create_future(), loop)
        self._enqueue(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.queue_timeout_s)
        except asyncio.TimeoutError:
            if self._withdraw(job):
                raise QueueTimeout(
                    f"the request waited more than {self.queue_timeout_s:g} s in the queue; the server is overloaded"
                ) from None
            return await job.future  # it is running: its answer is on the way
        except asyncio.CancelledError:
            self._withdraw(job)
            raise

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if self._queued_texts and self._queued_texts + len(job.texts) > self.max_queue:
                raise QueueFull(f"the queue is full ({self._queued_texts} texts waiting); try again later")
            self._queue.append(job)
            self._queued_texts += len(job.texts)
            self._report_depth()
            self._cond.notify()

    def _withdraw(self, job: _Job) -> bool:
        """Take a job out of the queue if the worker has not taken it yet."""
        with self._cond:
            if job.taken:
                return False
            try:
                self._queue.remove(job)
            except ValueError:
                return False
            self._queued_texts -= len(job.texts)
            self._report_depth()
            return True

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the queued ones, stop the worker (blocking)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ worker side
    def _work(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            try:
                self._run(jobs)
            except BaseException as exc:  # never let the worker die with requests waiting
                log.exception("inference worker error")
                for job in jobs:
                    _settle(job, None, exc)

    def _next_batch(self) -> list[_Job] | None:
        with self._cond:
            while True:
                while not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                deadline = self._queue[0].enqueued + self.max_wait_s
                while self._queue and self._queued_texts < self.max_batch_size and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._queue:  # (the oldest may have timed out while we waited)
                    return self._take()

    def _take(self) -> list[_Job]:
        """The oldest job, and the next ones while they fit into ``max_batch_size`` texts."""
        jobs = [self._queue.popleft()]
        size = len(jobs[0].texts)
        while self._queue and size + len(self._queue[0].texts) <= self.max_batch_size:
            size += len(self._queue[0].texts)
            jobs.append(self._queue.popleft())
        for job in jobs:
            job.taken = True
        self._queued_texts -= size
        self._report_depth()
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        explain = any(job.explain for job in jobs)
        start = time.monotonic()
        try:
            results = self._infer(texts, explain)
        except Exception as exc:
            self._observe(len(texts), time.monotonic() - start, failed=True)
            if len(jobs) == 1:
                log.error("batch failed", extra={"fields": {"n_texts": len(texts), "error": _describe(exc)}})
                _settle(jobs[0], None, exc)
                return
            log.warning(
                "batch failed; retrying its requests one by one",
                extra={"fields": {"n_requests": len(jobs), "n_texts": len(texts), "error": _describe(exc)}},
            )
            for job in jobs:
                self._run([job])
            return
        self._observe(len(texts), time.monotonic() - start, failed=False)
        offset = 0
        for job in jobs:
            mine = results[offset : offset + len(job.texts)]
            offset += len(job.texts)
            if explain and not job.explain:
                mine = [r.text for r in mine]
            _settle(job, mine, None)

    def _infer(self, texts: list[str], explain: bool) -> list[Any]:
        if explain:
            results = list(self.restorer.explain_documents(texts))
        else:
            results = list(self.restorer.restore_documents(texts))
        if len(results) != len(texts):
            raise RuntimeError(f"the model returned {len(results)} results for {len(texts)} texts")
        return results

    # ------------------------------------------------------------------ measurements
    def _observe(self, n_texts: int, seconds: float, failed: bool) -> None:
        if self.observer is not None:
            self.observer.batch_done(n_texts, seconds, failed)

    def _report_depth(self) -> None:
        if self.observer is not None:
            self.observer.queue_depth(self._queued_texts)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _settle(job: _Job, result: list[Any] | None, exc: BaseException | None) -> None:
    """Resolve a job's future from the worker thread (a no-op if it was cancelled)."""

    def resolve() -> None:
        if job.future.done():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result or [])

    with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting any more
        job.loop.call_soon_threadsafe(resolve)
