"""The figures each benchmark hands to `bench/summary.py`: one JSON line per figure, appended to
the file named by the benchmark's `--figures` option (nothing is written without it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    bench: str  # which benchmark measured it
    measure: str
    figure: str  # the value as printed, with its unit
    goal: str = ""  # the goal, empty when it sets none
    met: bool | None = None  # None: no goal


def write(path: Path | None, figures: list[Figure]) -> None:
    if path is None:
        return
    with path.open("a", encoding="utf-8") as out:
        for figure in figures:
            out.write(json.dumps(asdict(figure), ensure_ascii=False) + "\n")


def read(path: Path) -> list[Figure]:
    if not path.exists():
        return []
    return [Figure(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
