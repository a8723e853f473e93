"""How fast residents are imported from the prison's records: services.residents_import, as
`openvisit import residents FILE` runs it (the CSV streamed, 1,000 rows per transaction).

The file holds 100,000 generated residents with Cyrillic names across 3 facilities of 10 units each.
"first/s" imports it into an empty database (every row new); "again/s" imports the same file once more
(every row compared and unchanged). Each database is measured in a fresh process of its own, so "peak
RSS" is that process's high-water mark (interpreter, SQLAlchemy and driver included) and "RSS growth"
how much of it the first import added.
"""

from __future__ import annotations

import multiprocessing
import random
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks import BenchConfig, Figure
from benchmarks.databases import postgresql_database, sqlite_database
from openvisit.db.models import Facility, HousingUnit
from openvisit.domain.principal import SYSTEM
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.residents_import import FileFormat, import_file, open_import
from openvisit.settings import Settings

TITLE = "Resident import from CSV"
ROWS = 100_000
FACILITIES = 3
UNITS = 10
HEADER = "number,last_name,first_name,middle_name,birth_date,facility,unit,status\n"

_LAST = ("Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Фёдоров")
_FIRST = ("Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Юрий", "Пётр", "Илья", "Гусейн")
_MIDDLE = ("Александрович", "Сергеевич", "Дмитриевич", "Ильич", "Петрович", "", "Гусейн оглы")


def write_csv(path: Path, rows: int, seed: int = 17) -> None:
    """`rows` residents with Cyrillic names, one in twenty released, the rest active."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for n in range(1, rows + 1):
            born = date(1950, 1, 1) + timedelta(days=rnd.randrange(365 * 55))
            status = "released" if rnd.random() < 0.05 else "active"
            out.write(
                f"Б-{n:07d},{rnd.choice(_LAST)},{rnd.choice(_FIRST)},{rnd.choice(_MIDDLE)},{born.isoformat()},"
                f"IK-{rnd.randrange(FACILITIES) + 1},U{rnd.randrange(UNITS) + 1},{status}\n"
            )


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _import(ctx: AppContext, path: Path) -> tuple[float, Any]:
    started = time.perf_counter()
    with path.open("rb") as stream:
        result = import_file(ctx, SYSTEM, open_import(stream, FileFormat.CSV), RequestMeta(ip="bench"))
    return time.perf_counter() - started, result


def measure(backend: str, path: str, rows: int, pg_admin_url: str) -> dict[str, Any]:
    """Import the file twice into a fresh database of `backend`; run in a process of its own."""
    database = sqlite_database() if backend == "sqlite" else postgresql_database(pg_admin_url)
    with database as (db, engine):
        with db.write() as session:
            for f in range(1, FACILITIES + 1):
                facility = Facility(
                    code=f"IK-{f}", name=f"ИК-{f}", timezone="Asia/Krasnoyarsk", city="Красноярск"
                )
                session.add(facility)
                session.flush()
                session.add_all(
                    HousingUnit(facility_id=facility.id, code=f"U{u}", name=f"Отряд {u}")
                    for u in range(1, UNITS + 1)
                )
        ctx = AppContext(
            settings=Settings(database_url=db.engine.url.render_as_string(hide_password=False)), db=db
        )
        before = _peak_kib()
        first, result = _import(ctx, Path(path))
        peak = _peak_kib()
        if (result.imported, result.rejected) != (rows, 0):
            raise RuntimeError(f"the first import did not import every row: {result.summary()}")
        again, result = _import(ctx, Path(path))
        if result.unchanged != rows:
            raise RuntimeError(f"the second import was not all unchanged: {result.summary()}")
    return {
        "engine": engine,
        "first": rows / first,
        "again": rows / again,
        "peak_mib": max(peak, _peak_kib()) / 1024,
        "growth_mib": (peak - before) / 1024,
    }


def run(config: BenchConfig) -> list[Figure]:
    """Write the file once, then measure SQLite and PostgreSQL, each in a fresh process."""
    rows = max(100, int(ROWS * config.scale))
    figures = []
    with tempfile.TemporaryDirectory(prefix="openvisit-bench-import-") as tmp:
        path = Path(tmp) / "residents.csv"
        write_csv(path, rows)
        size_mib = path.stat().st_size / 2**20
        config.say(f"  {rows:,} rows, {size_mib:.1f} MiB of CSV")
        # A fresh process per database, so that its peak memory is this import's and no earlier one's.
        spawn = multiprocessing.get_context("spawn")
        for backend in ("sqlite", "postgresql"):
            with spawn.Pool(1) as pool:
                got = pool.apply(measure, (backend, str(path), rows, config.pg_admin_url))
            figures.append(
                Figure(
                    key={"database": got["engine"]},
                    values={
                        "rows": f"{rows:,}",
                        "first/s": f"{got['first']:,.0f}",
                        "again/s": f"{got['again']:,.0f}",
                        "peak RSS": f"{got['peak_mib']:.0f} MiB",
                        "RSS growth": f"{got['growth_mib']:.0f} MiB",
                    },
                )
            )
            config.say(
                f"  {got['engine']}: first {got['first']:,.0f} rows/s, again {got['again']:,.0f} rows/s, "
                f"peak RSS {got['peak_mib']:.0f} MiB (+{got['growth_mib']:.0f} MiB)"
            )
    return figures
