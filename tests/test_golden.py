"""Golden outputs of the shipped default model (re-record with tests/golden/record.py).

The seq2seq tier (``judge="none"``) on both backends, and the default path with the LM judge
when its base LM is in the cache (CI fetches it first: ``restorer models fetch``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restorer.infer import Restorer, default_model_dir

GOLDEN = Path(__file__).resolve().parent / "golden" / "default.jsonl"


@pytest.fixture(scope="module")
def restorer() -> Restorer:
    return Restorer.from_pretrained(device="cpu", judge="none")


BACKENDS = {"auto": "", "torch": "torch_"}  # backend -> key prefix in default.jsonl


def test_default_cpu_path_is_the_shipped_ctranslate2_export(restorer: Restorer) -> None:
    pytest.importorskip("ctranslate2")
    assert restorer.backend == "ctranslate2"
    assert (default_model_dir() / "ctranslate2" / "model.bin").exists()


def test_shipped_model_is_small_fp16_safetensors() -> None:
    from safetensors import safe_open

    d = default_model_dir()
    weights = d / "model.safetensors"
    assert weights.stat().st_size <= 42 * 1024 * 1024
    with safe_open(str(weights), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118
    assert dtypes == {"F16"}
    for name in ("config.json", "tokenizer.json", "README.md"):
        assert (d / name).exists(), name
    assert not list(d.glob("*.bin")) and not list(d.glob("optimizer*"))


def test_plain_transformers_loads_the_shipped_model() -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    d = str(default_model_dir())
    model = T5ForConditionalGeneration.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    ids = tok("The firm stated final week.", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=20, do_sample=False, num_beams=1)
    assert isinstance(tok.decode(out[0], skip_special_tokens=True), str)


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_outputs(backend: str) -> None:
    rows = [json.loads(x) for x in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 5
    key = BACKENDS[backend]
    r = Restorer.from_pretrained(device="cpu", backend=backend, judge="none")
    outputs = r.restore([row["input"] for row in rows])
    for row, out in zip(rows, outputs, strict=True):
        assert out == row[key + "output"], row["input"]
    # at least one golden sentence is really repaired, not passed through
    assert any(row[key + "output"] != row["input"] for row in rows)
    r.guard.enabled = False  # the raw decodes
    assert r.restore([row["input"] for row in rows]) == [row[key + "raw"] for row in rows]


def test_shipped_model_restores_the_example_keeping_layout(restorer: Restorer) -> None:
    src = (Path(__file__).resolve().parent.parent / "examples" / "spun_article.txt").read_text(
        encoding="utf-8"
    )
    out = restorer.restore(src)
    assert out.count("\n") == src.count("\n")
    for a, b in zip(src.splitlines(), out.splitlines(), strict=True):
        assert (a == "") == (b == "")
        assert len(a) - len(a.lstrip()) == len(b) - len(b.lstrip())


def test_golden_outputs_of_the_default_judge() -> None:
    """The default path: proposals judged by SmolLM2-135M (needs the cached LM)."""
    from restorer.infer.pipeline import read_judge_spec
    from restorer.model.base_lm import DEFAULT_LM, cached_lm

    spec = read_judge_spec(default_model_dir())
    assert spec is not None and spec.lm == DEFAULT_LM  # the shipped model names its judge
    if cached_lm(DEFAULT_LM) is None:
        pytest.skip(f"the base LM {DEFAULT_LM} is not cached (restorer models fetch)")
    rows = [json.loads(x) for x in GOLDEN.read_text(encoding="utf-8").splitlines()]
    spec.scorer = {**spec.scorer, "dtype": "fp32"}  # the same numbers on CPUs with and without bf16
    r = Restorer.from_pretrained(device="cpu", threads=2, judge=spec)
    assert r.judge is not None
    exps = r.explain([row["input"] for row in rows])
    for row, e in zip(rows, exps, strict=True):
        assert e.text == row["judge_output"], row["input"]
        for ed in e.edits:
            assert ed.source in ("table", "thesaurus", "seq2seq") and ed.gain is not None
    assert sum(row["judge_output"] != row["input"] for row in rows) >= 3


def test_golden_clean_lines_of_the_default_judge() -> None:
    """The default path on 200 clean lines written to trap it (quotes, e-mails, URLs, numbers,
    names, code, emoji, odd spacing, and the spinner tables' own words used rightly): the output
    is the recorded one and keeps every line. Issue 14 asks for 99% of the lines unchanged; the
    share is printed, and may only go up when re-recorded.

    fp32 matrix products round differently on different CPUs (AVX-512 and AVX2 kernels), so an
    edit within a hair of its threshold can go either way: the recording (AVX-512) and an AVX2
    machine differ on one line ("Nationwide"). At most ``CROSS_CPU_LINES`` lines may differ
    from the recording, and no more lines may change than in the recording."""
    from restorer.infer.pipeline import read_judge_spec
    from restorer.model.base_lm import DEFAULT_LM, cached_lm

    if cached_lm(DEFAULT_LM) is None:
        pytest.skip(f"the base LM {DEFAULT_LM} is not cached (restorer models fetch)")
    root = Path(__file__).resolve().parent
    src = (root.parent / "examples" / "clean_tricky_lines.txt").read_text(encoding="utf-8")
    golden = (root / "golden" / "clean_tricky_lines.out").read_text(encoding="utf-8")
    spec = read_judge_spec(default_model_dir())
    assert spec is not None
    spec.scorer = {**spec.scorer, "dtype": "fp32"}
    out = Restorer.from_pretrained(device="cpu", threads=2, judge=spec).restore(src)
    a, b, g = src.splitlines(), out.splitlines(), golden.splitlines()
    assert len(a) == len(b) == len(g) == 200 and out.endswith("\n")
    off = [(x, y) for x, y in zip(g, b, strict=True) if x != y]
    assert len(off) <= CROSS_CPU_LINES, off
    same = sum(x == y for x, y in zip(a, b, strict=True))
    assert same >= sum(x == y for x, y in zip(a, g, strict=True)) == CLEAN_LINES_IDENTICAL
    print(f"clean lines byte-identical: {same} of {len(a)}")


CLEAN_LINES_IDENTICAL = 199  # of 200, in the recorded golden output; issue 14 asks for 198
CROSS_CPU_LINES = 2  # lines that may differ from the recording on another CPU (1%)


def test_shipped_default_names_its_mined_rows_and_evidence() -> None:
    """The default's judge reads the base spinner's rows mined from train-split pairs and their
    evidence (``restorer tables mine``), both small, plain text and in the model directory."""
    from restorer.infer.pipeline import read_base_rows, read_judge_spec
    from restorer.infer.proposals import ProposalConfig, Proposer

    d = default_model_dir()
    spec = read_judge_spec(d)
    assert spec is not None and spec.tables and spec.evidence
    assert sum(f.stat().st_size for f in (d / spec.tables).iterdir()) < 4 * 1024 * 1024
    tables, evidence = read_base_rows(spec, d)
    assert len(tables) == 1 and evidence and all(0 <= r <= n for r, n in evidence.values())
    p = Proposer(ProposalConfig(thesaurus=False), tables=tables, base_evidence=evidence)
    yr = [c for c in p.propose("The programme ran for a yr.") if c.original == "yr"]
    assert any(c.replacement == "year" and c.source == "table" for c in yr)  # a mined row
    said = next(c for c in p.propose("The firm stated it.") if c.replacement == "said")
    assert said.evidence > 0  # the spinner's "stated" stands for "said" more often than its source's rows
