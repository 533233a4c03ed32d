"""The CTranslate2 backend: export, reload and restore on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ctranslate2")


def test_export_reload_restore(tiny_model: Path, tmp_path: Path) -> None:
    from restorer.infer import Restorer
    from restorer.infer.ct2 import ExportError, export_ctranslate2

    out = tmp_path / "ct2"
    info = export_ctranslate2(tiny_model, out, "int8")
    assert info["backend"] == "ctranslate2" and (out / "model.bin").exists() and (out / "tokenizer.json").exists()
    with pytest.raises(ExportError, match="not empty"):
        export_ctranslate2(tiny_model, out, "int8")
    with pytest.raises(ExportError, match="quantization"):
        export_ctranslate2(tiny_model, tmp_path / "x", "int3")

    r = Restorer.from_pretrained(out, device="cpu", threads=1)
    assert r.backend == "ctranslate2"
    doc = "The company said that prices rose.\n\n  Many people found a big change.\n"
    restored = r.restore(doc)
    assert restored.count("\n") == doc.count("\n") and restored.splitlines()[2].startswith("  ")
    e = r.explain("The firm stated final week.")
    assert all(0.0 <= x.confidence <= 1.0 for x in e.edits + e.rejected)

    # the backend follows the directory; an export cannot run on torch
    assert Restorer.from_pretrained(tiny_model, device="cpu").backend == "torch"
    with pytest.raises(ValueError, match="CTranslate2 export"):
        Restorer.from_pretrained(out, device="cpu", backend="torch")


def test_a_transformers_directory_is_converted_once_and_cached(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import restorer.infer.ct2 as ct2
    from restorer.infer import Restorer

    monkeypatch.setenv("RESTORER_CACHE", str(tmp_path / "cache"))
    r = Restorer.from_pretrained(tiny_model, device="cpu", threads=1, backend="ctranslate2")
    assert r.backend == "ctranslate2"
    exports = list((tmp_path / "cache" / "ctranslate2").iterdir())
    assert len(exports) == 1 and ct2.is_ctranslate2_dir(exports[0]) and exports[0].name.endswith("-int8")
    calls: list[Path] = []
    monkeypatch.setattr(ct2, "export_ctranslate2", lambda *a, **k: calls.append(a[0]))
    again = Restorer.from_pretrained(tiny_model, device="cpu", threads=1, backend="ctranslate2")
    assert calls == [] and again.restore("The firm stated final week.") == r.restore("The firm stated final week.")
    with pytest.raises(ct2.ExportError, match="not a restorer model directory"):
        ct2.cached_export(tmp_path)


def test_ct2_greedy_matches_torch_greedy_in_float32(tiny_model: Path, tmp_path: Path) -> None:
    from restorer.infer import Restorer
    from restorer.infer.ct2 import export_ctranslate2

    export_ctranslate2(tiny_model, tmp_path / "f32", "float32")
    texts = ["The firm stated final week.", "Many people found a big change in the city."]
    ct = Restorer.from_pretrained(tmp_path / "f32", device="cpu", guard=False)
    pt = Restorer.from_pretrained(tiny_model, device="cpu", guard=False)
    assert ct.restore(texts) == pt.restore(texts)
    # the guard's token probabilities (from the decode's own steps) agree with torch's
    for a, b in zip(ct.decode(texts), pt.decode(texts), strict=True):
        assert a.token_ids == b.token_ids and len(a.token_probs) == len(a.token_ids) > 0
        assert a.token_probs == pytest.approx(b.token_probs, abs=1e-3)


def test_cli_export_and_restore_with_the_backend(tiny_model: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESTORER_CACHE": str(tmp_path / "cache")}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "restorer.cli", *args], input=stdin, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    out = tmp_path / "ct2"
    res = cli("export", "ctranslate2", "--model", str(tiny_model), "--output", str(out))
    assert res.returncode == 0, res.stderr
    text = "One line.\n\n  Two lines here.\n"
    res = cli("restore", "--model", str(out), "--backend", "ctranslate2", stdin=text)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("\n") == text.count("\n")
    restored = res.stdout
    res = cli("export", "ctranslate2", "--model", str(tiny_model), "--output", str(out))
    assert res.returncode == 2 and "not empty" in res.stderr
    # a transformers directory runs on the backend too: converted once into the cache
    res = cli("restore", "--model", str(tiny_model), "--backend", "ctranslate2", stdin=text)
    assert res.returncode == 0 and res.stdout == restored, res.stderr
    assert len(list((tmp_path / "cache" / "ctranslate2").iterdir())) == 1
    res = cli("restore", "--model", str(out), "--backend", "torch", stdin=text)
    assert res.returncode == 2 and "cannot run on the torch backend" in res.stderr


def test_auto_uses_a_bundled_export_only_while_it_matches_the_weights(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from restorer.infer import Restorer
    from restorer.infer.ct2 import SUBDIR, bundled_export, export_ctranslate2

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    assert Restorer.from_pretrained(model, device="cpu").backend == "torch"
    export_ctranslate2(model, model / SUBDIR, "int8")
    assert bundled_export(model) == model / SUBDIR
    assert Restorer.from_pretrained(model, device="cpu", threads=1).backend == "ctranslate2"
    # a decoder asked for, or another device, keeps torch
    assert Restorer.from_pretrained(model, device="cpu", decoder="greedy").backend == "torch"
    # weights replaced after the export: the stale export is ignored
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"")  # same bytes: still valid
    assert bundled_export(model) is not None
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    save_file(tensors, weights, metadata={"format": "pt"})
    assert bundled_export(model) is None
    assert Restorer.from_pretrained(model, device="cpu").backend == "torch"
