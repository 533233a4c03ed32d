"""Record the golden outputs of the shipped default model (run after shipping a new model).

python tests/golden/record.py
"""

from __future__ import annotations

import json
from pathlib import Path

from restorer.infer import Restorer

HERE = Path(__file__).resolve().parent
CLEAN_LINES = HERE.parent.parent / "examples" / "clean_tricky_lines.txt"
INPUTS = [
    "The firm stated final week that youngsters had been taking part in a brand new recreation.",
    "In accordance with the Wall Road Journal, the Supreme Courtroom dominated on the case two years in the past.",
    "Folks have to discover out what it's that makes their well being so vital.",
    "The staff will probably be engaged on the venture for the following three months, officers mentioned.",
    "She pointed out that test scores rose by 12 percent in schools that took part.",
    "It was a cold morning, and the river was quiet.",
    "The city's college board said final week that it would possibly expand an interpretation programme for little ones in the first and 2nd grades.",
    "Critics, however, argue that the cash may be fuller dropped on hiring more trainers.",
    "See https://example.com/docs or write to info@example.org before 5 March 2024.",
]


def main() -> None:
    rows: list[dict[str, str]] = [{"input": i} for i in INPUTS]
    # the default CPU path (the shipped int8 CTranslate2 export) and the torch backend
    for prefix, backend in (("", "auto"), ("torch_", "torch")):
        r = Restorer.from_pretrained(device="cpu", backend=backend, judge="none")
        outputs = r.restore(INPUTS)
        r.guard.enabled = False
        raw = r.restore(INPUTS)
        for row, o, w in zip(rows, outputs, raw, strict=True):
            row[prefix + "output"], row[prefix + "raw"] = o, w
    # the default path: the seq2seq tier's proposals and the tables', judged by the base LM
    from restorer.infer import default_model_dir
    from restorer.infer.pipeline import read_judge_spec

    spec = read_judge_spec(default_model_dir())
    spec.scorer = {**spec.scorer, "dtype": "fp32"}  # as the test loads it: the same on every CPU
    judge = Restorer.from_pretrained(device="cpu", threads=2, judge=spec)
    judged = judge.restore(INPUTS)
    for row, o in zip(rows, judged, strict=True):
        row["judge_output"] = o
    # the clean-lines file: what the default path does to 200 clean lines with tricky tokens
    clean = CLEAN_LINES.read_text(encoding="utf-8")
    (HERE / "clean_tricky_lines.out").write_text(judge.restore(clean), encoding="utf-8")
    with open(HERE / "default.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"recorded {len(rows)} golden outputs on each backend")


if __name__ == "__main__":
    main()
