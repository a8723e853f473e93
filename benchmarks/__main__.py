"""Run the benchmarks and record their figures in benchmarks/README.md.

    python -m benchmarks [NAME ...] [--scale 0.01] [--no-write]

NAME is a module's name without `bench_` (e.g. `audit_chain`, `scheduling`); none means all. Each
module's rows go into a table between `<!-- bench:NAME -->` markers; a row measured on the same commit,
machine and setup as a new one is replaced, the others are kept, so the file keeps a history across
commits.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from benchmarks import BenchConfig, Figure

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
ROW_KEY = ("commit", "machine")


STANDALONE = ("scheduling", "media")
"""Benchmarks that are also programs of their own (`python -m benchmarks.scheduling --quick`), so their
module has no `bench_` prefix; they are run like the others."""


def discover() -> dict[str, ModuleType]:
    """Every `bench_*` module here, by its name without the prefix, and the standalone ones."""
    found = {m.name for m in pkgutil.iter_modules([str(HERE)])}
    names = sorted(n for n in found if n.startswith("bench_") or n in STANDALONE)
    return {name.removeprefix("bench_"): importlib.import_module(f"benchmarks.{name}") for name in names}


def machine() -> str:
    """CPU model, cores, memory and Python: enough to tell two machines' figures apart."""
    cpu = platform.processor() or platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
        kib = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
        memory = f", {int(kib.group(1)) / 2**20:.0f} GiB" if kib else ""
    except OSError:
        memory = ""
    system = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} cores{memory}, {system}"


def commit() -> str:
    """The short commit, marked +dirty when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed arguments
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def update_table(
    text: str, name: str, title: str, about: str, key_columns: list[str], rows: list[dict[str, str]]
) -> str:
    """Put `rows` into the table of benchmark `name` in `text`, replacing rows with equal key columns."""
    columns = list(dict.fromkeys(["date", *key_columns, *rows[0]]))
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if start not in text:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{about}\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    body, after = rest.split(end, 1)
    lines = [line for line in body.strip().splitlines() if line.startswith("|")]
    old: list[dict[str, str]] = []
    if len(lines) >= 2:
        header = _cells(lines[0])
        old = [dict(zip(header, _cells(line), strict=False)) for line in lines[2:]]
        columns += [c for c in header if c not in columns]
    new_keys = {tuple(r.get(c, "") for c in key_columns) for r in rows}
    kept = [r for r in old if tuple(r.get(c, "") for c in key_columns) not in new_keys]
    table = [_row(columns), _row(["---"] * len(columns))]
    table += [_row([r.get(c, "") for c in columns]) for r in [*kept, *rows]]
    return before + start + "\n" + "\n".join(table) + "\n" + end + after


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every benchmark's size")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave README.md alone")
    args = parser.parse_args(argv)

    found = discover()
    unknown = set(args.names) - set(found)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (there are: {', '.join(found)})")
    config = BenchConfig(scale=args.scale)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    where = {"commit": commit(), "machine": machine()}
    print(f"machine: {where['machine']}\ncommit: {where['commit']}")
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    for name, module in found.items():
        if args.names and name not in args.names:
            continue
        print(f"{name}: {module.TITLE}")
        figures: list[Figure] = module.run(config)
        rows = [{"date": date, **where, **f.key, **f.values} for f in figures]
        key_columns = [*ROW_KEY, *figures[0].key]
        about = (module.__doc__ or "").strip()
        text = update_table(text, name, module.TITLE, about, key_columns, rows)
    if args.no_write or args.scale != 1.0:
        print("README.md left as it was" + (" (scaled run)" if args.scale != 1.0 else ""))
    else:
        README.write_text(text, encoding="utf-8")
        print(f"figures written to {README.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
