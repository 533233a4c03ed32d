"""``restorer serve`` in a child process on a free loopback port (for tests and benchmarks)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

_LISTENING_RE = re.compile(r"Uvicorn running on (http://\S+)")


class ServerProcess:
    """Starts ``restorer serve ARGS --host 127.0.0.1 --port 0`` and finds its URL in its log.

    ``prelude`` is Python run in the child before the CLI (e.g. to patch the model for a
    test). The URL comes from uvicorn's "running on" line, so keep the log level at info or
    debug. The child's stderr (uvicorn's lines and the JSON request log) goes to a file:
    ``log_text()``.
    """

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        prelude: str = "",
        host: str = "127.0.0.1",
    ) -> None:
        code = f"{prelude}\nimport sys\nfrom restorer.cli import main\nsys.exit(main(sys.argv[1:]))"
        self.command = [sys.executable, "-c", code, "serve", *args, "--host", host, "--port", "0"]
        self.env = {**os.environ, **(env or {})}
        self._log_fd, name = tempfile.mkstemp(prefix="restorer-serve-", suffix=".log")
        self.log_path = Path(name)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 120.0, ready: bool = True) -> str:
        """Start the child; return its base URL once it listens (and, with ``ready``, is ready)."""
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fd,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while not self.url:
            found = _LISTENING_RE.search(self.log_text())
            if found:
                self.url = found.group(1)
                break
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start in {timeout:g} s:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        if ready:
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        return self.url

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server was not ready in {timeout:g} s:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit (kill after ``timeout``); the exit status."""
        if self.proc is None:
            return 0
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def close(self) -> None:
        self.stop()
        os.close(self._log_fd)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
