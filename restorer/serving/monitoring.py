"""Prometheus metrics of the server.

One process: each app has its own registry, so apps never share series. Several workers
(``--workers N``): ``restorer serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before
the workers start, every worker writes its series there, and ``/metrics`` on any worker answers
for all of them (prometheus_client's multiprocess mode): counters and histograms are summed, the
queue depth is the sum over live workers and ``restorer_model_ready`` is the minimum (1 once every
live worker has its model).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    exposition,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# the classic text format, which every Prometheus version scrapes
CONTENT_TYPE: str = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double the output for nothing here
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "restorer_requests", "HTTP requests answered, by route, method and status code",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "restorer_request_duration_seconds", "Time from request to response, by route",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.texts = Counter("restorer_texts", "Texts restored (successful requests only)", registry=r)
        self.batch_size = Histogram(
            "restorer_batch_size",
            "Texts per batch run by the inference worker",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "restorer_batch_duration_seconds", "Model time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_failures = Counter(
            "restorer_batch_failures", "Batches whose model call raised", registry=r
        )
        self.queue = Gauge(
            "restorer_queue_depth", "Texts waiting for the inference worker", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.queue_timeouts = Counter(
            "restorer_queue_timeouts", "Requests withdrawn after waiting too long in the queue", registry=r
        )
        self.ready = Gauge(
            "restorer_model_ready", "1 once the model is loaded (every live worker's)", registry=r,
            multiprocess_mode="livemin",
        )  # fmt: skip

    # the batcher's observer interface
    def batch_done(self, n_texts: int, seconds: float, failed: bool) -> None:
        self.batch_size.observe(n_texts)
        self.batch_duration.observe(seconds)
        if failed:
            self.batch_failures.inc()

    def queue_depth(self, n_texts: int) -> None:
        self.queue.set(n_texts)

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        if multiprocess_dir():
            registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client asks
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def close(self) -> None:
        """This process is stopping: drop its live gauges (the queue depth, readiness)."""
        if multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())


def multiprocess_dir() -> str | None:
    """The folder of multi-worker metrics, or None in a single process."""
    return os.environ.get(MULTIPROC_ENV) or None
