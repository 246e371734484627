"""Benchmark: one hourly run (compute + materialize of every view) before and after a change.

    python -m bench.hourly_run --events 10000000 --baseline d4c6050

Uses the feature-compute benchmark's data (`bench.feature_compute`: generated clean events
over `--days` days; `--data-dir DIR --reuse` keeps and reuses them). Times `--hours`
consecutive hourly runs near the end of the data (each: `compute` then `materialize` of
every view for that hour, into a local Redis), once with the current code and once with
the code of `--baseline` (a git commit, checked out into a temporary worktree and run in a
process of its own on a copy of the data directory, so both read the same clean tables).
One warm-up hour per side is not timed. Prints medians per run and rows written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.driver.memory": "6g",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
}


SOURCE_DATABASES = ("raw", "clean")


def copy_sources(data_dir: str | Path, scratch: Path) -> Path:
    """A data directory in `scratch` holding copies of `data_dir`'s raw and clean tables.

    Only the Delta table directories are copied: the metastore keeps absolute locations,
    so a copy of it would still point at the original tables (`register_sources`).
    """
    for database in SOURCE_DATABASES:
        source = Path(data_dir) / "warehouse" / f"{database}.db"
        if source.exists():
            shutil.copytree(source, scratch / "warehouse" / f"{database}.db")
    return scratch


def register_sources(spark, data_dir: Path) -> None:
    """Register the copied tables in this session's own metastore, by location."""
    for database in SOURCE_DATABASES:
        folder = data_dir / "warehouse" / f"{database}.db"
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        for table in sorted(folder.iterdir()) if folder.exists() else []:
            if not spark.catalog.tableExists(f"{database}.{table.name}"):
                spark.sql(f"CREATE TABLE {database}.{table.name} USING DELTA LOCATION '{table}'")


def worker(data_dir: str, first_hour: datetime, hours: int) -> dict:
    """Run in a process whose `pipelines` is the code under test (see `run_side`)."""
    import os

    os.environ["FEATURE_PLATFORM_DATA_DIR"] = data_dir
    from pipelines.compute import compute
    from pipelines.redis_server import RedisServer, free_port
    from pipelines.serving.materialize import materialize
    from pipelines.spark import get_spark

    spark = get_spark("bench-hourly-run", extra_conf=SPARK_CONF)
    register_sources(spark, Path(data_dir))
    runs = []
    with RedisServer(Path(data_dir) / "bench-redis", port=free_port()) as redis:
        for n in range(hours + 1):  # the first hour warms up
            start, end = first_hour + timedelta(hours=n), first_hour + timedelta(hours=n + 1)
            began = time.perf_counter()
            written = compute(spark, start=start, end=end)
            computed = time.perf_counter() - began
            report = materialize(
                spark, start=start, end=end, redis_url=redis.url, record_in_feast=False
            )
            runs.append(
                {
                    "hour": start.isoformat(),
                    "compute_s": computed,
                    "materialize_s": time.perf_counter() - began - computed,
                    "rows": sum(written.values()),
                    "online": sum(v.written for v in report.views),
                }
            )
    spark.stop()
    return {"warmup": runs[0], "runs": runs[1:]}


def run_side(code_root: Path, data_dir: str, first_hour: datetime, hours: int) -> dict:
    """The worker in a fresh process that imports `pipelines` from `code_root`."""
    # This file is loaded by path: the baseline's checkout has a `bench` of its own.
    program = (
        "import importlib.util, json, sys\n"
        f"sys.path.insert(0, {str(code_root)!r})\n"
        "from datetime import datetime\n"
        f"spec = importlib.util.spec_from_file_location('hourly_run', {__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print('RESULT ' + json.dumps(module.worker({data_dir!r}, "
        f"datetime.fromisoformat({first_hour.isoformat()!r}), {hours})))\n"
    )
    # Spark's Python workers import `pipelines` in processes of their own, with their
    # working directory first on the path: run in the checkout, with it on PYTHONPATH too.
    env = {
        "SPARK_CONF_DIR": str(code_root / "spark_conf"),
        "PATH": _path(),
        "PYTHONPATH": str(code_root),
    }
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=env,
        cwd=code_root,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"worker on {code_root} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def _path() -> str:
    import os

    return os.environ.get("PATH", "")


def summarize(label: str, result: dict) -> dict:
    runs = result["runs"]
    out = {
        "compute": statistics.median(r["compute_s"] for r in runs),
        "materialize": statistics.median(r["materialize_s"] for r in runs),
        "total": statistics.median(r["compute_s"] + r["materialize_s"] for r in runs),
        "rows": statistics.median(r["rows"] for r in runs),
        "online": statistics.median(r["online"] for r in runs),
    }
    for r in runs:
        print(
            f"  {label:<9} {r['hour']}: compute {r['compute_s']:6.1f} s, materialize "
            f"{r['materialize_s']:5.1f} s, {r['rows']:>8,} rows written, {r['online']:>7,} online"
        )
    return out


def main() -> None:
    from bench.feature_compute import START, prepare_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--hours", type=int, default=4, help="timed hourly runs per side")
    parser.add_argument("--baseline", default="d4c6050", help="git commit of the 'before' code")
    parser.add_argument("--data-dir", default=None, help="default: a temporary directory")
    parser.add_argument("--reuse", action="store_true", help="keep the clean tables in --data-dir")
    args = parser.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="hourly-bench-")
    if not args.reuse:
        import os

        os.environ["FEATURE_PLATFORM_DATA_DIR"] = data_dir
        from pipelines.spark import get_spark

        spark = get_spark("bench-hourly-data", extra_conf=SPARK_CONF)
        total = prepare_data(spark, args.events, args.days)
        print(f"data: {total:,} clean events over {args.days} days in {data_dir}", flush=True)
        spark.stop()
    # Evening hours of the last day: busy ones.
    first_hour = START + timedelta(days=args.days - 1, hours=18)

    scratch = Path(tempfile.mkdtemp(prefix="hourly-bench-"))
    worktree = scratch / "code"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline],
        check=True,
        capture_output=True,
    )
    try:
        # Each side writes its feature tables into a data directory of its own.
        before_data = copy_sources(data_dir, scratch / "before")
        before = run_side(worktree, str(before_data), first_hour, args.hours)
        after_data = copy_sources(data_dir, scratch / "after")
        after = run_side(ROOT, str(after_data), first_hour, args.hours)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)])
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    b = summarize(f"{args.baseline[:8]}", before)
    a = summarize("current", after)
    print()
    print(f"hourly runs from {first_hour:%Y-%m-%d %H:%M}, medians of {args.hours}, Spark local[2]")
    print(
        f"{'code':<10}{'compute s':>11}{'materialize s':>15}{'total s':>10}{'rows':>10}{'online':>9}"
    )
    for label, r in ((args.baseline[:8], b), ("current", a)):
        print(
            f"{label:<10}{r['compute']:>11.1f}{r['materialize']:>15.1f}{r['total']:>10.1f}"
            f"{r['rows']:>10,.0f}{r['online']:>9,.0f}"
        )
    print(f"current / {args.baseline[:8]}: {a['total'] / b['total']:.2f}x per hourly run")


if __name__ == "__main__":
    main()
