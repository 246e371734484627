"""Benchmark: wall time of the online/offline consistency check on 10 000 sampled entities.

    python -m bench.consistency --scale 4 --sample 10000 --repeats 3

In a throwaway data directory with its own redis-server: generates `--days` days of
events at `--scale` (scale 4 has 20 000 members), ingests them, computes every
feature view for the last day, applies the Feast repo and materializes that day,
then times `check_consistency` (all views, reads through Feast, Great Expectations
verdict, metrics appended to Delta) with `--sample` entities per view against the
same check with `--baseline-sample` entities, medians of `--repeats` runs each after
one warm-up run. Prints entities actually compared (views with fewer entities than
the sample contribute all they have) and the verdicts, which must all pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 11, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--baseline-sample", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    warnings.filterwarnings("ignore", message="The spark", category=RuntimeWarning)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-consistency-"))
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(data_dir)

    from pipelines.compute import compute
    from pipelines.feast_repo import feast_objects
    from pipelines.generate import generate
    from pipelines.ingest import ingest
    from pipelines.quality.consistency import check_consistency
    from pipelines.redis_server import RedisServer
    from pipelines.serving.materialize import materialize
    from pipelines.serving.store import feature_store
    from pipelines.spark import get_spark

    end = START + timedelta(days=args.days)
    last_day = end - timedelta(days=1)
    spark = get_spark("bench-consistency")
    setup: dict[str, float] = {}

    def step(name: str, func):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        result = func()
        setup[name] = time.perf_counter() - began
        print(f"  {name}: {setup[name]:.1f} s", flush=True)
        return result

    with RedisServer(data_dir / "redis") as server:
        os.environ["REDIS_URL"] = server.url
        step("generate", lambda: generate(spark, start=START, end=end, scale=args.scale))
        step("ingest", lambda: ingest(spark, start=START, end=end))
        step("compute last day", lambda: compute(spark, start=last_day, end=end))
        store = feature_store(server.url)
        step("feast apply", lambda: store.apply(list(feast_objects().values())))
        step(
            "materialize",
            lambda: materialize(spark, start=last_day, end=end, redis_url=server.url),
        )

        timings: dict[int, list[float]] = {}
        compared: dict[int, int] = {}
        for sample in (args.baseline_sample, args.sample):
            runs = []
            for attempt in range(args.repeats + 1):
                began = time.perf_counter()
                report = check_consistency(spark, as_of=end, sample=sample, store=store)
                seconds = time.perf_counter() - began
                if not report.success:
                    raise SystemExit("consistency check failed:\n" + "\n".join(report.lines()))
                compared[sample] = report.sampled_entities
                if attempt:  # the first run warms Feast's registry cache and GE
                    runs.append(seconds)
                print(
                    f"  sample {sample}: {seconds:.1f} s ({report.sampled_entities} entities)",
                    flush=True,
                )
            timings[sample] = runs

    base = statistics.median(timings[args.baseline_sample])
    print()
    print(
        f"scale {args.scale}, {args.days} days, consistency as of {end:%Y-%m-%d %H:%M}; "
        f"{args.repeats} runs after a warm-up; cores: {os.cpu_count()}"
    )
    print(f"{'sample per view':>16}{'entities compared':>19}{'median s':>10}{'vs baseline':>13}")
    for sample, runs in timings.items():
        median = statistics.median(runs)
        print(f"{sample:>16}{compared[sample]:>19}{median:>10.1f}{median / base:>12.2f}x")
    spark.stop()


if __name__ == "__main__":
    main()
