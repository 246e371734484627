"""`python -m bench` (`make bench`): list the benchmarks and how to run each.

They run one at a time and on demand (minutes to an hour each), so nothing runs here.
"""

from __future__ import annotations

import ast
from pathlib import Path

BENCH_DIR = Path(__file__).parent


def summaries() -> list[tuple[str, str, str]]:
    """(module, first docstring line, example command) per benchmark module."""
    found = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        lines = [line.strip() for line in doc.splitlines() if line.strip()]
        command = next((line for line in lines if line.startswith("python -m")), "")
        found.append((f"bench.{path.stem}", lines[0] if lines else "", command))
    return found


def main() -> None:
    for module, summary, command in summaries():
        print(f"{module}\n    {summary}\n    {command or f'python -m {module} --help'}\n")


if __name__ == "__main__":
    main()
