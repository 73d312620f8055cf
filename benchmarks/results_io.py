"""Result rows on disk: one JSON object per line, appended whole, read past a torn line.

Imports nothing else of ``benchmarks``, so that every script can use it: the runner, the
job worker, and the studies that ``benchmarks.models`` registers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def json_default(value: Any) -> Any:
    """What ``json.dumps`` writes for values it cannot: numpy scalars and arrays as Python
    numbers and lists, anything else as its text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of a results.jsonl (a torn last line from a crash is skipped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line atomically: one ``os.write`` on an O_APPEND file, then fsync.

    A file that does not end in a newline (a crash tore its last line) gets one first, in
    the same write: the torn fragment stays a line of its own, which :func:`read_results`
    skips, and the new row is never glued onto it.
    """
    data = (json.dumps(row, default=json_default) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:  # one write; the loop only finishes a short write (a full disk)
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
