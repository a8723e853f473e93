"""Benchmarks: each `bench_*.py` module measures one thing; `python -m benchmarks` runs them all and
writes the figures, with the machine, the date and the commit, into benchmarks/README.md."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Figure:
    """One row of a benchmark's table: what was measured where (`key` columns) and the numbers."""

    key: dict[str, str]
    values: dict[str, str]


@dataclass(frozen=True)
class BenchConfig:
    """What a benchmark may use: a PostgreSQL server where it may create and drop a database of its own."""

    pg_admin_url: str = field(
        default_factory=lambda: os.environ.get(
            "OPENVISIT_BENCH_PG_URL", os.environ.get("OPENVISIT_TEST_PG_URL", DEFAULT_PG_URL)
        )
    )
    scale: float = 1.0
    """Multiplies each benchmark's default size (0.01 for a quick check that they run)."""
    say: Callable[[str], None] = print
