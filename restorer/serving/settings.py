"""``ServeConfig``: every setting of ``restorer serve``.

Each field is a command-line flag (``max_batch_size`` → ``--max-batch-size``) and an environment
variable (``RESTORER_MAX_BATCH_SIZE``); a flag wins over the environment, which wins over the
default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from restorer.common import ConfigError

ENV_PREFIX = "RESTORER_"
BACKENDS = ("auto", "torch", "ctranslate2")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServeConfig:
    # the model
    model: str | None = _opt(None, "model directory (default: the shipped model)")
    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int | None = _opt(None, "CPU threads for the model in each worker (default: torch's)")
    backend: str = _opt("auto", "auto, torch or ctranslate2 (auto: the model's own int8 export on the CPU)")
    decode_batch_size: int = _opt(32, "sentences per forward pass of the model")
    guard: bool = _opt(True, "apply the faithfulness guard (--no-guard: the model's raw output)")
    min_confidence: float | None = _opt(None, "the guard's minimum edit confidence, 0-1 (default: 0.4)")
    judge: str = _opt("auto", "the LM judge: auto (the model's own), a known LM name, an LM directory, or none")
    styles: str = _opt("", "spinner styles to add, comma-separated: style packages (restorer finetune output), "
                       "style YAMLs or built-in names")
    model_process: bool = _opt(
        True, "run the model in a child process, restarted if it dies (its requests in flight get 503 with "
        "Retry-After); --no-model-process: in the server process"
    )
    # the HTTP server
    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8080, "port to listen on (0: any free port)")
    workers: int = _opt(1, "server processes, each with its own model and batcher")
    graceful_timeout_s: float = _opt(30.0, "on SIGTERM, wait at most this long for requests in flight")
    # dynamic batching
    max_batch_size: int = _opt(32, "most texts the inference worker runs in one batch")
    max_wait_ms: float = _opt(5.0, "longest a request waits for others to fill its batch")
    queue_timeout_s: float = _opt(30.0, "a request still queued after this long gets 503")
    max_queue: int = _opt(4096, "most texts waiting in the queue; more gets 503")
    # limits on requests
    max_body_bytes: int = _opt(1_048_576, "largest request body in bytes (413 above)")
    max_texts: int = _opt(256, "most texts in one request (413 above)")
    max_chars: int = _opt(20_000, "most characters in one text (413 above)")
    # logs
    log_level: str = _opt("info", "critical, error, warning, info or debug")
    log_texts: bool = _opt(False, "include the request texts in the request log lines")

    def style_list(self) -> list[str]:
        return [s.strip() for s in self.styles.split(",") if s.strip()]

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_sources(
        cls, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
    ) -> ServeConfig:
        """Defaults, then ``RESTORER_*`` variables from ``env``, then ``flags`` (None = not given)."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = (env or {}).get(env_name(f.name), "")
            if raw.strip():
                values[f.name] = _coerce(raw.strip(), hints[f.name], env_name(f.name))
            given = (flags or {}).get(f.name)
            if given is not None:
                values[f.name] = _coerce(given, hints[f.name], flag_name(f.name))
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_env(self) -> dict[str, str]:
        """The environment variables that rebuild this configuration (for worker processes)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[env_name(f.name)] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    def replace(self, **changes: Any) -> ServeConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        at_least = {
            "decode_batch_size": 1, "workers": 1, "max_batch_size": 1, "max_queue": 1,
            "max_body_bytes": 1, "max_texts": 1, "max_chars": 1, "port": 0,
            "max_wait_ms": 0, "graceful_timeout_s": 0,
        }  # fmt: skip
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ConfigError(f"{_where(name)} must be at least {low}, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"{_where('threads')} must be at least 1, got {self.threads}")
        if self.port > 65535:
            raise ConfigError(f"{_where('port')} must be at most 65535, got {self.port}")
        if self.queue_timeout_s <= 0:
            raise ConfigError(f"{_where('queue_timeout_s')} must be more than 0, got {self.queue_timeout_s}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(
                f"{_where('min_confidence')} must be between 0 and 1, got {self.min_confidence}"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(f"{_where('backend')} must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"{_where('log_level')} must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )

    def guard_config(self) -> Any:  # -> restorer.infer.GuardConfig
        from restorer.infer import GuardConfig

        if self.min_confidence is None:
            return GuardConfig(enabled=self.guard)
        return GuardConfig(enabled=self.guard, min_confidence=self.min_confidence)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _where(name: str) -> str:
    return f"{flag_name(name)} ({env_name(name)})"


def option_help() -> list[tuple[str, str, Any, type]]:
    """``(field, help, default, base type)`` of every setting, for the command line."""
    hints = get_type_hints(ServeConfig)
    return [(f.name, f.metadata["help"], f.default, _base_type(hints[f.name])) for f in fields(ServeConfig)]


def _base_type(typ: Any) -> type:
    for base in (bool, int, float, str):
        if typ is base or base in getattr(typ, "__args__", ()):
            return base
    raise TypeError(f"unsupported setting type {typ!r}")


def _coerce(value: Any, typ: Any, where: str) -> Any:
    base = _base_type(typ)
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if base is int:
        try:
            return int(str(value).strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if base is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    return str(value)
