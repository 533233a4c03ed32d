"""The run's logs: ``log.csv`` (loss, learning rate, speed) and ``eval.csv`` (the metrics)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class CsvLog:
    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        if not path.exists():
            with open(path, "w", newline="") as fh:
                csv.writer(fh).writerow(fields)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow([row.get(f, "") for f in self.fields])
