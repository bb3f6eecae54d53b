"""Read-only connections to the read-model database."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from domain.errors import NotFound


def read_models_path(source: Any) -> Path:
    """``source``: a Lianxin container, Settings, or a path."""
    settings = getattr(source, "settings", source)
    path = getattr(settings, "read_models_path", settings)
    return Path(path)


@contextmanager
def reading(source: Any) -> Iterator[sqlite3.Connection]:
    """One consistent snapshot (a read transaction) of the read models."""
    path = read_models_path(source)
    if not path.exists():
        raise NotFound(f"no read models at {path}: start `lianxin serve` or "
                       "`lianxin projections run` first")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")
        yield db
        db.execute("COMMIT")
    finally:
        db.close()
