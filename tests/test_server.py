"""`restorer serve`: real HTTP against uvicorn on a free port of 127.0.0.1.

Most tests share one server subprocess on the tiny session model (``tiny_model`` in
conftest.py) with small limits. With the guard on, that babbling model gives every text back
unchanged, so each answer must equal its own request's texts (and ``Restorer.restore``).
The batching, timeout, failure and readiness tests run the app in this process (uvicorn in a
thread) with fake models whose speed and failures they control.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from restorer.common import ConfigError
from restorer.serving.app import create_app
from restorer.serving.process import ServerProcess
from restorer.serving.settings import ServeConfig

LIMITS = ["--max-texts", "8", "--max-chars", "300", "--max-body-bytes", "8192"]
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
SENTENCES = [
    "The firm stated final week that youngsters had been glad.",
    "Two lines\nin one text.",
    "",
    "Café, naïve, 東京 😀 and “curly quotes”.",
    "   Indented, with trailing spaces.   ",
]


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[ServerProcess]:
    batching = "--threads 1 --max-batch-size 8 --max-wait-ms 20".split()
    args = ["--model", str(tiny_model), *batching, *LIMITS]
    proc = ServerProcess(args, env=ENV)
    proc.start()
    yield proc
    assert proc.stop() == 0
    proc.close()


@pytest.fixture(scope="module")
def url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture(scope="module")
def local(tiny_model: Path) -> Any:
    from restorer.infer import Restorer

    return Restorer.from_pretrained(tiny_model, device="cpu")


def infer_body(texts: Sequence[Any], **extra: Any) -> dict[str, Any]:
    tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": list(texts)}
    return {"inputs": [tensor], **extra}


def post(url: str, path: str, body: Any = None, content: bytes | None = None, **kw: Any) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post(url + path, content=content, timeout=60, **kw)


def error_of(r: httpx.Response, status: int | tuple[int, ...]) -> str:
    assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


# ----------------------------------------------------------------------------- KServe v2


def test_health_metadata_and_schema(url: str) -> None:
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").json() == {"ready": True}
    assert httpx.get(url + "/v2/models/restorer/ready").json() == {"name": "restorer", "ready": True}
    server = httpx.get(url + "/v2").json()
    assert server["name"] == "restorer" and server["version"]
    meta = httpx.get(url + "/v2/models/restorer").json()
    assert meta["name"] == "restorer" and meta["platform"]
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "restored", "datatype": "BYTES", "shape": [-1]}]
    assert "unknown model" in error_of(httpx.get(url + "/v2/models/other"), 404)
    assert error_of(httpx.get(url + "/no/such/route"), 404)
    schema = httpx.get(url + "/openapi.json").json()
    assert {"/v2/models/{model_name}/infer", V1, "/metrics"} <= set(schema["paths"])
    body = schema["paths"]["/v2/models/{model_name}/infer"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/InferRequest")
    assert "InferRequest" in schema["components"]["schemas"]
    assert httpx.get(url + "/docs").status_code == 200


def test_v2_infer_round_trip(url: str, local: Any) -> None:
    r = post(
        url, "/v2/models/restorer/infer", infer_body(SENTENCES, id="req-1"), headers={"X-Request-ID": "abc-1"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "abc-1"
    body = r.json()
    assert body["model_name"] == "restorer" and body["id"] == "req-1"
    [out] = body["outputs"]
    assert out["name"] == "restored" and out["datatype"] == "BYTES" and out["shape"] == [len(SENTENCES)]
    assert out["data"] == local.restore(SENTENCES) == SENTENCES  # the guard keeps the babble out

    # a [N, 1] tensor keeps its shape; an empty one is fine; "outputs" may name the output
    two = infer_body(SENTENCES[:2], outputs=[{"name": "restored"}])
    two["inputs"][0]["shape"] = [2, 1]
    assert post(url, "/v2/models/restorer/infer", two).json()["outputs"][0]["shape"] == [2, 1]
    empty = post(url, "/v2/models/restorer/infer", infer_body([])).json()
    assert empty["outputs"][0]["data"] == [] and empty["outputs"][0]["shape"] == [0] and "id" not in empty


# ----------------------------------------------------------------------------- /v1/restore


def test_v1_restore_text_texts_and_explain(url: str, local: Any) -> None:
    one = post(url, V1, {"text": SENTENCES[0]})
    assert one.status_code == 200 and one.json() == {"text": local.restore(SENTENCES[0])}
    many = post(url, V1, {"texts": SENTENCES})
    assert many.json() == {"texts": local.restore(SENTENCES)}
    assert post(url, V1, {"texts": []}).json() == {"texts": []}
    lone = "A lone surrogate \ud800 in valid JSON."  # not UTF-8: comes back \u-escaped
    assert post(url, V1, {"text": lone}).json() == {"text": lone}

    explained = post(url, V1, {"text": SENTENCES[0], "explain": True}).json()
    assert explained == local.explain(SENTENCES[0]).to_dict()
    assert set(explained) == {"text", "edits", "rejected", "spin_score", "sentences"}
    assert explained["rejected"]  # the babble, rejected by the guard
    both = post(url, V1, {"texts": SENTENCES[:2], "explain": True}).json()
    assert both["texts"] == SENTENCES[:2]
    assert both["explanations"] == [e.to_dict() for e in local.explain(SENTENCES[:2])]


# ----------------------------------------------------------------------------- bad clients

V2 = "/v2/models/restorer/infer"
V1 = "/v1/restore"


def v2(texts: Sequence[Any] = ("a",), **tensor: Any) -> bytes:
    """A v2 infer body, with some fields of its tensor changed."""
    body = infer_body(texts)
    body["inputs"][0].update(tensor)
    return json.dumps(body).encode()


def raw(body: Any) -> bytes:
    return json.dumps(body).encode()


BAD_REQUESTS: list[tuple[str, str, bytes, int | tuple[int, ...], str]] = [
    # (case, path, body, status, words in the error)
    ("body too big", V2, v2(["x" * 200] * 50), 413, "max_body_bytes"),
    ("too many texts", V2, v2(["a"] * 9), 413, "max_texts"),
    ("too many texts v1", V1, raw({"texts": ["a"] * 9}), 413, "max_texts"),
    ("text too long", V2, v2(["ok", "y" * 301]), 413, "text 1 is too long"),
    ("text too long v1", V1, raw({"text": "z" * 301}), 413, "max_chars"),
    ("malformed JSON", V2, b'{"inputs": [', 400, "malformed JSON"),
    ("malformed JSON v1", V1, b"{'text': 'single quotes'}", 400, "malformed JSON"),
    ("not UTF-8", V2, v2(["PLACEHOLDER"]).replace(b"PLACEHOLDER", b"\xff\xfe"), 400, "UTF-8"),
    ("not UTF-8 v1", V1, '{"text": "café"}'.encode("latin-1"), 400, "UTF-8"),
    ("empty body", V2, b"", 400, "empty"),
    ("deep nesting", V2, b"[" * 3000 + b"]" * 3000, (400, 422), ""),
    ("not an object", V2, b'["a", "b"]', 422, "JSON object"),
    ("wrong datatype", V2, v2(datatype="FP32"), 422, "BYTES"),
    ("shape mismatch", V2, v2(["a", "b"], shape=[3]), 400, "shape [3]"),
    ("negative shape", V2, v2(shape=[-1]), 422, "must not be negative"),
    ("fractional shape", V2, v2(shape=[1.5]), 422, "whole number"),
    ("non-string data", V2, v2(["a", 3]), 422, "data[1]"),
    ("null data", V2, v2([None]), 422, "data[0]"),
    ("nested data", V2, v2([["a"]], shape=[1, 1]), 422, "data[0]"),
    ("wrong input name", V2, v2(name="x"), 422, "'text'"),
    ("two inputs", V2, raw({"inputs": infer_body(["a"])["inputs"] * 2}), 422, "at most 1"),
    ("no inputs key", V2, b"{}", 422, "inputs"),
    ("null id", V2, raw(infer_body(["a"], id=None)), 422, "id must not be null"),
    ("unknown output", V2, raw(infer_body(["a"], outputs=[{"name": "logits"}])), 422, "logits"),
    ("unknown key", V2, raw(infer_body(["a"], extra=1)), 422, "extra"),
    ("text and texts", V1, b'{"text": "a", "texts": ["b"]}', 422, "exactly one"),
    ("neither", V1, b'{"explain": true}', 422, "exactly one"),
    ("null text", V1, b'{"text": null, "texts": ["a"]}', 422, "text must not be null"),
    ("text not a string", V1, b'{"text": 5}', 422, "text"),
    ("texts not a list", V1, b'{"texts": "abc"}', 422, "texts"),
    ("explain not a bool", V1, b'{"text": "a", "explain": "yes"}', 422, "explain"),
]


@pytest.mark.parametrize("case,path,body,status,words", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_clear_json_errors(
    url: str, case: str, path: str, body: bytes, status: int | tuple[int, ...], words: str
) -> None:
    r = post(url, path, content=body)
    assert words in error_of(r, status)
    if r.status_code == 413:
        assert r.json()["limit"] in r.json()["error"]


def test_streamed_body_over_the_limit_is_refused(url: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for _ in range(20):
            yield b" " * 1024

    r = httpx.post(url + V2, content=chunks(), timeout=60)
    assert "max_body_bytes" in error_of(r, 413)


def test_urllib_posting_far_over_the_limit_gets_the_413(url: str) -> None:
    """urllib writes its whole body first and asks to close the connection: the server must read
    the body's rest before it closes, or the client sees a reset instead of the answer."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + V2, data=b" " * (5 << 20), method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    body = json.loads(caught.value.read())
    assert body["limit"] == "max_body_bytes" and "max_body_bytes" in body["error"]


BIG_LIMIT = 1 << 20  # 1 MiB


@pytest.fixture(scope="module")
def big_url() -> Iterator[str]:
    """An in-process server with a 1 MiB body limit."""
    with running(create_app(ServeConfig(max_body_bytes=BIG_LIMIT), loader=FakeRestorer)) as url:
        wait_ready(url)
        yield url


def send_whole_body(
    url: str, path: str, body: bytes, chunked: bool = False, close: bool = False
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, bytes]:
    """POST with http.client, which writes the whole body before it reads the response."""
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    headers = {"Content-Type": "application/json", **({"Connection": "close"} if close else {})}
    if chunked:
        pieces = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        conn.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
    else:
        conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return conn, response, response.read()


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_five_times_the_limit_gets_the_413_answer(big_url: str, chunked: bool, close: bool) -> None:
    conn, response, data = send_whole_body(big_url, V2, b" " * (5 * BIG_LIMIT), chunked=chunked, close=close)
    try:
        assert response.status == 413, data
        assert response.getheader("content-type", "").startswith("application/json")
        body = json.loads(data)
        assert set(body) == {"error", "limit"} and body["limit"] == "max_body_bytes"
        assert "the request body is too large" in body["error"] and str(BIG_LIMIT) in body["error"]
        if close:
            assert response.getheader("connection") == "close"
        else:  # the body was read to its end: the connection serves the next request
            assert response.getheader("connection") is None
            conn.request("POST", V1, body=raw({"text": "next"}), headers={"Content-Type": "application/json"})
            after = conn.getresponse()
            assert after.status == 200 and json.loads(after.read()) == {"text": "NEXT"}
    finally:
        conn.close()


def test_answers_sent_before_the_body_is_read_reach_the_client(big_url: str) -> None:
    big = b" " * (3 * BIG_LIMIT)
    conn, response, data = send_whole_body(big_url, "/v2/models/nope/infer", big, close=True)
    conn.close()
    assert response.status == 404 and "unknown model" in json.loads(data)["error"]
    conn, response, data = send_whole_body(big_url, "/no/such/route", big, close=True)
    conn.close()
    assert response.status == 404 and json.loads(data)["error"]


def raw_exchange(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a request head (and maybe part of its body); everything the server answers until it
    closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_client_waiting_for_100_continue_is_answered_at_once(big_url: str) -> None:
    head = (f"POST {V2} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {5 * BIG_LIMIT}\r\nExpect: 100-continue\r\n\r\n")  # fmt: skip
    answer = raw_exchange(big_url, head)  # the server closes: the body need never be sent
    assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nconnection: close\r\n" in answer.lower()
    assert b"100 Continue" not in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["limit"] == "max_body_bytes"


def test_a_body_past_the_drain_bound_is_answered_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from restorer.serving import bodies

    monkeypatch.setattr(bodies, "DRAIN_BYTES", 2 * BIG_LIMIT)
    with running(create_app(ServeConfig(max_body_bytes=BIG_LIMIT), loader=FakeRestorer)) as url:
        head = (f"POST {V1} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {4 * BIG_LIMIT}\r\n\r\n")  # fmt: skip
        answer = raw_exchange(url, head)  # no draining (it could not end in time): answer, close
        assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nconnection: close\r\n" in answer.lower()
        # within the bound the body is drained as usual
        conn, response, data = send_whole_body(url, V1, b" " * (2 * BIG_LIMIT), close=True)
        conn.close()
        assert response.status == 413 and json.loads(data)["limit"] == "max_body_bytes"


def test_a_body_that_stalls_is_answered_and_closed_when_the_drain_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from restorer.serving import bodies

    monkeypatch.setattr(bodies, "DRAIN_SECONDS", 0.5)
    with running(create_app(ServeConfig(max_body_bytes=BIG_LIMIT), loader=FakeRestorer)) as url:
        head = (f"POST {V1} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {2 * BIG_LIMIT}\r\n\r\n")  # fmt: skip
        start = time.monotonic()
        answer = raw_exchange(url, head, b" " * (BIG_LIMIT + BIG_LIMIT // 2))  # then nothing more
        assert time.monotonic() - start < 10
        assert answer.startswith(b"HTTP/1.1 413 ") and b"\r\nconnection: close\r\n" in answer.lower()


def test_bad_clients_do_not_hurt_the_server(url: str) -> None:
    for _case, path, body, _status, _words in BAD_REQUESTS:
        post(url, path, content=body)
    r = post(url, V2, infer_body(["Still here."]))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["Still here."]


def test_wrong_method_and_model(url: str) -> None:
    assert error_of(httpx.get(url + V2), 405)
    assert "unknown model" in error_of(post(url, "/v2/models/nope/infer", infer_body(["a"])), 404)


# ----------------------------------------------------------------------------- concurrency, metrics, logs


def test_concurrent_requests_each_get_their_own_answer(url: str, local: Any) -> None:
    requests = [[f"Request {i} sentence {j} is here." for j in range(1 + i % 3)] for i in range(16)]

    def call(texts: list[str]) -> list[str]:
        r = post(url, V2, infer_body(texts))
        assert r.status_code == 200, r.text
        return r.json()["outputs"][0]["data"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, requests))
    assert answers == requests
    assert answers == [local.restore(texts) for texts in requests]


def test_metrics(url: str) -> None:
    post(url, V2, infer_body(["Counted."]))
    post(url, V2, content=b"{")
    text = httpx.get(url + "/metrics").text
    assert 'restorer_requests_total{method="POST",route="/v2/models/{model_name}/infer",status="200"}' in text
    assert 'restorer_requests_total{method="POST",route="/v2/models/{model_name}/infer",status="400"}' in text
    assert 'restorer_request_duration_seconds_bucket{le="0.5",route="/v2/models/{model_name}/infer"}' in text
    assert "restorer_batch_size_bucket" in text and "restorer_batch_size_count" in text
    assert "restorer_queue_depth 0.0" in text
    assert "restorer_model_ready 1.0" in text
    assert metric(text, "restorer_texts_total") >= 1


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def test_one_json_log_line_per_request_without_texts(url: str, server: ServerProcess) -> None:
    secret = "Zebra-marker-7731 should never be logged."
    r = post(url, V1, {"text": secret}, headers={"X-Request-ID": "log-test-1"})
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while not (mine := [x for x in log_lines(server) if x.get("request_id") == "log-test-1"]):
        assert time.monotonic() < deadline, "no log line for the request"
        time.sleep(0.02)
    assert len(mine) == 1
    assert mine[0]["event"] == "request" and mine[0]["path"] == V1 and mine[0]["status"] == 200
    assert mine[0]["n_texts"] == 1 and mine[0]["latency_ms"] > 0
    assert "Zebra-marker" not in server.log_text()


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(x) for x in server.log_text().splitlines() if x.startswith("{")]


# ----------------------------------------------------------------------------- in-process apps


class FakeExplanation:
    def __init__(self, text: str) -> None:
        self.text = text

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "edits": [], "rejected": [], "spin_score": 0.0, "sentences": []}


class FakeRestorer:
    """Restores by upper-casing; records its batches; can be slow or fail on a marker."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.batches: list[list[str]] = []

    def restore_documents(self, texts: Sequence[str]) -> list[str]:
        self.batches.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise ValueError("the model choked on a marker")
        return [t.upper() for t in texts]

    def explain_documents(self, texts: Sequence[str]) -> list[FakeExplanation]:
        return [FakeExplanation(t) for t in self.restore_documents(texts)]


@contextmanager
def running(app: Any) -> Iterator[str]:
    """uvicorn serving ``app`` in a thread on a free port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_ready(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(url + "/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.01)


def in_parallel(url: str, bodies: Sequence[tuple[str, Any]]) -> list[httpx.Response]:
    """POST every ``(path, body)`` at once (a barrier lines the threads up)."""
    barrier = threading.Barrier(len(bodies))

    def call(item: tuple[str, Any]) -> httpx.Response:
        barrier.wait()
        return post(url, item[0], item[1])

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(call, bodies))


def test_readiness_is_false_until_the_model_is_loaded() -> None:
    release = threading.Event()
    fake = FakeRestorer()

    def slow_loader() -> FakeRestorer:
        assert release.wait(30)
        return fake

    with running(create_app(ServeConfig(), loader=slow_loader)) as url:
        assert httpx.get(url + "/v2/health/live").status_code == 200  # live at once
        assert httpx.get(url + "/v2/health/ready").json() == {"ready": False}
        assert httpx.get(url + "/v2/health/ready").status_code == 503
        assert httpx.get(url + "/v2/models/restorer/ready").status_code == 503
        assert "loading" in error_of(post(url, V2, infer_body(["a"])), 503)
        assert "restorer_model_ready 0.0" in httpx.get(url + "/metrics").text
        release.set()
        wait_ready(url)
        assert post(url, V2, infer_body(["a"])).json()["outputs"][0]["data"] == ["A"]


def test_a_model_that_fails_to_load_keeps_the_server_unready() -> None:
    def broken() -> FakeRestorer:
        raise OSError("no weights here")

    with running(create_app(ServeConfig(), loader=broken)) as url:
        deadline = time.monotonic() + 10
        while "error" not in (body := httpx.get(url + "/v2/health/ready").json()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert body["ready"] is False and "no weights here" in body["error"]
        assert "no weights here" in error_of(post(url, V1, {"text": "a"}), 503)
        assert httpx.get(url + "/v2/health/live").status_code == 200


def test_dynamic_batching_gathers_requests_and_answers_each() -> None:
    fake = FakeRestorer(delay=0.05)
    config = ServeConfig(max_batch_size=6, max_wait_ms=300)
    with running(create_app(config, loader=lambda: fake)) as url:
        wait_ready(url)
        bodies = [(V2, infer_body([f"r{i} a", f"r{i} b"])) for i in range(6)]
        bodies.append((V1, {"texts": ["v1 x"], "explain": True}))
        responses = in_parallel(url, bodies)
        for i, r in enumerate(responses[:6]):
            assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [f"R{i} A", f"R{i} B"]
        assert responses[6].json() == {"texts": ["V1 X"], "explanations": [FakeExplanation("V1 X").to_dict()]}
        assert max(len(b) for b in fake.batches) > 2  # requests were gathered ...
        assert all(len(b) <= 6 for b in fake.batches)  # ... up to max_batch_size texts
        # a request larger than max_batch_size runs alone, whole
        big = post(url, V2, infer_body([str(i) for i in range(9)])).json()["outputs"][0]["data"]
        assert big == [str(i) for i in range(9)] and fake.batches[-1] == big
        text = httpx.get(url + "/metrics").text
        assert metric(text, "restorer_batch_size_count") == len(fake.batches)
        assert metric(text, "restorer_batch_size_sum") == sum(len(b) for b in fake.batches)


def test_a_failing_request_does_not_poison_its_batch() -> None:
    fake = FakeRestorer(fail_on="BOOM")
    config = ServeConfig(max_batch_size=64, max_wait_ms=300)
    with running(create_app(config, loader=lambda: fake)) as url:
        wait_ready(url)
        bodies = [(V2, infer_body([f"good {i}"])) for i in range(5)] + [(V2, infer_body(["ok", "BOOM here"]))]
        responses = in_parallel(url, bodies)
        for i, r in enumerate(responses[:5]):
            assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [f"GOOD {i}"]
        assert "marker" in error_of(responses[5], 500)
        assert any(len(b) > 2 and "BOOM here" in b for b in fake.batches)  # it was batched with others
        assert post(url, V2, infer_body(["after"])).json()["outputs"][0]["data"] == ["AFTER"]  # worker alive
        assert metric(httpx.get(url + "/metrics").text, "restorer_batch_failures_total") >= 2


def test_a_request_that_waits_too_long_in_the_queue_gets_503() -> None:
    fake = FakeRestorer(delay=1.0)
    config = ServeConfig(max_batch_size=1, max_wait_ms=0, queue_timeout_s=0.2)
    with running(create_app(config, loader=lambda: fake)) as url, ThreadPoolExecutor(1) as pool:
        wait_ready(url)
        first = pool.submit(post, url, V2, infer_body(["first"]))
        while not fake.batches:  # the worker is busy with the first request
            time.sleep(0.01)
        start = time.monotonic()
        r = post(url, V2, infer_body(["second"]))
        assert time.monotonic() - start < 0.9  # answered when its time was up, not when the worker freed
        assert "queue" in error_of(r, 503) and r.json()["limit"] == "queue_timeout_s"
        assert r.headers["retry-after"]
        assert first.result().json()["outputs"][0]["data"] == ["FIRST"]
        assert fake.batches == [["first"]]  # the timed-out request never reached the model
        assert metric(httpx.get(url + "/metrics").text, "restorer_queue_timeouts_total") == 1


def test_batcher_drains_the_queue_on_close() -> None:
    import asyncio

    from restorer.serving.batcher import Batcher, ShuttingDown

    fake = FakeRestorer(delay=0.05)
    batcher = Batcher(fake, max_batch_size=2, max_wait_s=0.0)
    batcher.start()

    async def main() -> list[Any]:
        tasks = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(6)]
        await asyncio.sleep(0.01)
        await asyncio.to_thread(batcher.close)  # while most are still queued
        with pytest.raises(ShuttingDown):
            await batcher.submit(["late"])
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [[f"T{i}"] for i in range(6)]


# ----------------------------------------------------------------------------- shutdown and configuration

SLOW_MODEL = """
import os, time
from pathlib import Path
from restorer.infer import Restorer
_restore = Restorer.restore_documents
def _slow(self, texts):
    Path(os.environ["RESTORER_TEST_MARKER"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("RESTORER_TEST_SLEEP", "1.5")))
    return _restore(self, texts)
Restorer.restore_documents = _slow
"""


def slow_server(tiny_model: Path, tmp_path: Path, *args: str, sleep: float = 1.5) -> tuple[ServerProcess, Path]:
    """A server whose model sleeps in every batch and first writes its pid to a marker file. The
    patch is a ``sitecustomize`` module on PYTHONPATH, so it reaches the model process too."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('RESTORER_TEST_MARKER'):\n"
        + "".join("    " + line + "\n" for line in SLOW_MODEL.strip().splitlines())
    )
    marker = tmp_path / "in-model"
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH", "")]))
    env = {**ENV, "RESTORER_TEST_MARKER": str(marker), "RESTORER_TEST_SLEEP": str(sleep), "PYTHONPATH": path}
    return ServerProcess(["--model", str(tiny_model), "--threads", "1", *args], env=env), marker


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):  # the request is in the model
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


@pytest.mark.parametrize("where", ["--model-process", "--no-model-process"])
def test_sigterm_drains_requests_in_flight(tiny_model: Path, tmp_path: Path, where: str) -> None:
    proc, marker = slow_server(tiny_model, tmp_path, where)
    try:
        url = proc.start()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post, url, V2, infer_body(["Slow one.", "Second."]))
            model_pid = int(wait_for(marker))
            assert (model_pid != proc.proc.pid) == (where == "--model-process")
            proc.terminate()
            r = pending.result(timeout=60)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["Slow one.", "Second."]
        assert proc.stop(timeout=60) == 0
        log = proc.log_text()
        assert '"event": "stopped"' in log and "Traceback" not in log
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/v2/health/live")
        assert not _alive(model_pid)  # the model process ends with the server
    finally:
        proc.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_a_killed_model_process_costs_its_requests_a_503_and_is_restarted(tiny_model: Path, tmp_path: Path) -> None:
    """SIGKILL the model process while requests are in the model: every client gets an answer
    (503 with Retry-After, never a hang or a reset connection), the server process lives on,
    restarts the model, and answers the same requests again."""
    proc, marker = slow_server(tiny_model, tmp_path, sleep=3.0)
    texts = [["Slow one.", "Second."], ["Third one."], ["Fourth."]]
    try:
        url = proc.start()
        with ThreadPoolExecutor(len(texts)) as pool:
            pending = [pool.submit(post, url, V2, infer_body(t)) for t in texts]
            pid = int(wait_for(marker))
            assert pid != proc.proc.pid
            marker.unlink()
            os.kill(pid, 9)
            answers = [p.result(timeout=60) for p in pending]
        for r in answers:  # the batch in the model, and those queued behind it
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
            assert "model process" in r.json()["error"]
        assert httpx.get(url + "/v2/health/live").status_code == 200  # the server itself lived on
        proc.wait_ready(120)  # a new model process
        r = post(url, V2, infer_body(["Again."]))
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["Again."]
        new_pid = int(marker.read_text())
        assert new_pid != pid and not _alive(pid)
        log = proc.log_text()
        assert '"event": "model process died"' in log and log.count('"event": "model process ready"') == 2
        assert proc.stop(timeout=60) == 0
        assert not _alive(new_pid)
    finally:
        proc.close()


def test_settings_from_flags_env_and_defaults() -> None:
    env = {"RESTORER_PORT": "9000", "RESTORER_MAX_BATCH_SIZE": "4", "RESTORER_GUARD": "false",
           "RESTORER_MAX_WAIT_MS": "2.5", "RESTORER_CACHE": "/elsewhere", "RESTORER_THREADS": ""}  # fmt: skip
    cfg = ServeConfig.from_sources(env, {"port": "9100", "max_texts": None})
    assert cfg.port == 9100  # the flag wins
    assert cfg.max_batch_size == 4 and cfg.max_wait_ms == 2.5 and cfg.guard is False  # from the environment
    assert cfg.max_texts == ServeConfig.max_texts and cfg.threads is None  # defaults
    assert ServeConfig.from_sources(cfg.to_env()) == cfg  # what worker processes rebuild
    for env, flags, words in [
        ({"RESTORER_PORT": "http"}, {}, "RESTORER_PORT: expected an integer"),
        ({}, {"max_batch_size": "0"}, "--max-batch-size (RESTORER_MAX_BATCH_SIZE) must be at least 1"),
        ({"RESTORER_GUARD": "maybe"}, {}, "true or false"),
        ({}, {"min_confidence": "2"}, "between 0 and 1"),
        ({}, {"queue_timeout_s": "0"}, "more than 0"),
        ({"RESTORER_LOG_LEVEL": "loud"}, {}, "one of"),
    ]:
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            ServeConfig.from_sources(env, flags)


def test_serve_command_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    def serve(*args: str, env: dict[str, str] | None = None) -> str:
        r = subprocess.run([sys.executable, "-m", "restorer.cli", "serve", *args], capture_output=True,
                           text=True, timeout=120, env={**os.environ, **ENV, **(env or {})})  # fmt: skip
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        return r.stderr

    assert "no model at" in serve("--model", str(tmp_path / "missing"))
    assert "--port: expected an integer" in serve("--port", "eighty", "--model", str(tmp_path))
    assert "RESTORER_MAX_TEXTS" in serve("--model", str(tmp_path), env={"RESTORER_MAX_TEXTS": "-1"})
    assert "device" in serve("--device", "tpu", "--model", str(tmp_path))


# ----------------------------------------------------------------------------- schema fuzzing


def test_openapi_fuzz_finds_no_server_error(url: str) -> None:
    """schemathesis generates requests from the served OpenAPI schema, a bounded number per
    operation: schema-valid ones (with the tensor shape set to match its data, which a schema
    cannot say) must succeed, schema-violating ones must get a 4xx, none a 5xx; every answer
    must match its documented status, content type and schema."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    statuses: dict[tuple[str, str], set[int]] = {}

    def run(case: Any, mode: GenerationMode) -> None:
        positive = mode == GenerationMode.POSITIVE
        tensor = case.body["inputs"][0] if positive and case.path.endswith("/infer") else None
        if tensor is not None:
            tensor["shape"] = [len(tensor["data"])]
        response = case.call_and_validate(base_url=url, checks=checks)
        statuses.setdefault((case.path, mode.value), set()).add(response.status_code)
        if positive:
            assert response.status_code in (200, 413), response.text  # 413: a body over max_body_bytes
        else:
            assert 400 <= response.status_code < 500, response.text
        if tensor is not None and response.status_code == 200:
            assert len(response.json()["outputs"][0]["data"]) == len(tensor["data"])

    def fuzz(operation: Any, mode: GenerationMode) -> None:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, phases=[Phase.generate], database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case: Any) -> None:
            run(case, mode)

        check()

    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE)
        if operation.method.lower() == "post":  # only bodies can be made invalid
            fuzz(operation, GenerationMode.NEGATIVE)
    assert 200 in statuses[("/v2/models/{model_name}/infer", "positive")]
    assert 200 in statuses[(V1, "positive")]


def test_workers_share_one_metrics_view(tiny_model: Path) -> None:
    """With --workers 2 any worker's /metrics counts the requests of both (multiprocess mode)."""
    proc = ServerProcess(["--model", str(tiny_model), "--workers", "2", "--threads", "1"], env=ENV)
    try:
        url = proc.start()
        deadline = time.monotonic() + 120
        while "restorer_model_ready 1.0" not in httpx.get(url + "/metrics").text:  # every worker loaded
            assert time.monotonic() < deadline, httpx.get(url + "/metrics").text
            time.sleep(0.2)
        n = 12
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: post(url, "/v1/restore", {"text": f"Text {i}."}), range(n)))
        assert [r.json()["text"] for r in answers] == [f"Text {i}." for i in range(n)]
        ok = 'restorer_requests_total{method="POST",route="/v1/restore",status="200"}'
        for _ in range(6):  # the connections land on either worker: each must answer for both
            text = httpx.get(url + "/metrics").text
            assert metric(text, ok) == n, text
            assert metric(text, "restorer_texts_total") == n
        assert proc.stop(timeout=60) == 0
    finally:
        proc.close()


def test_the_ctranslate2_backend_serves_and_stops_cleanly(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU default for a model with an export: answers match Restorer's, SIGTERM exits 0."""
    pytest.importorskip("ctranslate2")
    from restorer.infer import Restorer

    env = {**ENV, "RESTORER_CACHE": str(tmp_path / "cache")}
    proc = ServerProcess(["--model", str(tiny_model), "--backend", "ctranslate2", "--threads", "1"], env=env)
    try:
        url = proc.start()
        texts = ["The firm stated final week.", "Many people found a big change in the city.", ""]
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: post(url, "/v1/restore", {"texts": texts}), range(3)))
        monkeypatch.setenv("RESTORER_CACHE", str(tmp_path / "cache"))  # the server's conversion
        local = Restorer.from_pretrained(tiny_model, device="cpu", threads=1, backend="ctranslate2")
        assert local.backend == "ctranslate2"
        for r in answers:
            assert r.status_code == 200 and r.json()["texts"] == local.restore(texts)
        assert proc.stop(timeout=60) == 0
        assert "Traceback" not in proc.log_text() and "terminate called" not in proc.log_text()
    finally:
        proc.close()
