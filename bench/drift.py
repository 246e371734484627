"""Benchmark: drift of every declared feature, Spark (this platform) against Evidently.

    python -m bench.drift --reference-rows 1000000 --current-rows 10000000 --repeats 1

Writes a reference and a current sample of every feature of every view (shaped by its
type: counts, long-tailed amounts, categories, dates) to Parquet, with `--shifted`
features moved in the current sample. Then times, on the same files:
- `pipelines.monitoring.drift.measure_drift` on the local Spark session (median of
  `--repeats` runs after one warm-up), with the driver's and the JVM's peak memory;
- the HTML report of that run, rendered by headless Chromium to a PNG when `chromium` is
  installed (Debian's package);
- Evidently's `DataDriftPreset` report (pandas), run by `--evidently-python` (default:
  a virtualenv the benchmark makes under ~/.cache/feature-platform/, with Evidently and
  pandas 2, so the platform's own environment stays as it is), with its peak memory.
Prints a table and which features each tool flags: ours at the warning threshold
(PSI 0.1, Jensen-Shannon 0.1), Evidently at its defaults (normed Wasserstein 0.1 /
Jensen-Shannon 0.1 above 1,000 rows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_ROWS = 500_000
EVIDENTLY_VENV = Path.home() / ".cache" / "feature-platform" / "bench-evidently"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas>=2.3,<3"]
CATEGORIES = ["tv", "mobile", "web", "tablet", "console", "car", "watch", "other"]

EVIDENTLY_SCRIPT = """
import json, resource, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

reference_path, current_path, numeric, categorical = sys.argv[1:5]
numeric, categorical = json.loads(numeric), json.loads(categorical)
began = time.perf_counter()
reference = pd.read_parquet(reference_path)
current = pd.read_parquet(current_path)
for frame in (reference, current):  # dates as days, as the platform measures them
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]):  # dates come as objects
            days = pd.to_datetime(frame[column]) - pd.Timestamp("1970-01-01")
            frame[column] = days.dt.days
loaded = time.perf_counter() - began
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
began = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(
    current_data=Dataset.from_pandas(current, data_definition=definition),
    reference_data=Dataset.from_pandas(reference, data_definition=definition),
)
seconds = time.perf_counter() - began
drifted = []
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if not config["type"].endswith("ValueDrift"):
        continue
    value, threshold = float(metric["value"]), float(config["threshold"])
    p_value = "p_value" in config["method"] or "test" in config["method"].lower()
    if (value < threshold) if p_value else (value >= threshold):
        drifted.append(config["column"])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "load_seconds": loaded, "drifted": drifted, "peak_mb": peak_mb}))
"""


def _features():  # type: ignore[no-untyped-def]
    from features import REGISTRY

    return [f for view in REGISTRY.views for f in view.features]


def _column(rng: np.random.Generator, value_type: str, rows: int, shifted: bool) -> pa.Array:
    if value_type == "int64":
        return pa.array(rng.poisson(4.0 if shifted else 3.0, rows).astype(np.int64))
    if value_type == "float64":
        values = rng.lognormal(7.5 if shifted else 7.0, 1.0, rows)
        values[rng.random(rows) < 0.02] = np.nan  # empty windows
        return pa.array(values, from_pandas=True)
    if value_type == "date":
        return pa.array(rng.integers(18_000, 20_000, rows).astype("datetime64[D]"))
    shares = np.asarray([0.4, 0.25, 0.12, 0.08, 0.06, 0.04, 0.03, 0.02])
    if shifted:
        shares = shares[::-1]
    return pa.array(np.asarray(CATEGORIES, dtype=object)[rng.choice(8, rows, p=shares)])


def _write(path: Path, features, rows: int, shifted: set[str], seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        table = pa.table(
            {f.name: _column(rng, f.value_type, n, f.name in shifted) for f in features}
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def _evidently_python(given: str | None) -> str:
    if given:
        return given
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {EVIDENTLY_VENV} with {', '.join(EVIDENTLY_REQUIREMENTS)} ...")
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS], check=True
        )
    return str(python)


def _screenshot(page: Path, png: Path) -> None:
    """Render the report in headless Chromium (Debian's `chromium`), offline, to a PNG."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium): report not rendered")
        return
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1200,3000",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
    print(f"rendered by {chromium}: {png} ({png.stat().st_size:,} bytes)")


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--current-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--shifted",
        default="watch_seconds_sum_7d,ad_impressions_count_1d,device_last_28d",
        help="Comma-separated features moved in the current sample",
    )
    parser.add_argument("--evidently-python", default=None)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    os.environ["FEATURE_PLATFORM_DATA_DIR"] = str(work / "data")
    features = _features()
    shifted = {name.strip() for name in args.shifted.split(",") if name.strip()}
    reference_path, current_path = work / "reference.parquet", work / "current.parquet"
    began = time.perf_counter()
    _write(reference_path, features, args.reference_rows, set(), seed=1)
    _write(current_path, features, args.current_rows, shifted, seed=2)
    print(
        f"{len(features)} features, reference {args.reference_rows:,} rows, current "
        f"{args.current_rows:,} rows, written in {time.perf_counter() - began:.0f} s ({work})"
    )

    from pipelines.monitoring.drift import Verdict, is_categorical, measure_drift
    from pipelines.monitoring.report import write_report
    from pipelines.spark import get_spark

    spark = get_spark("bench-drift")
    reference = spark.read.parquet(str(reference_path))
    current = spark.read.parquet(str(current_path))
    times, found = [], []
    for run in range(args.repeats + 1):
        began = time.perf_counter()
        found = measure_drift(reference, current, features)
        if run:  # the first run warms the JVM up
            times.append(time.perf_counter() - began)
    ours = sorted(d.feature for d in found if d.verdict is not Verdict.OK)
    verdicts = {d.verdict for d in found}
    overall = next((v for v in (Verdict.ALERT, Verdict.WARN) if v in verdicts), Verdict.OK)
    report = write_report(
        work / "drift.html", str(reference_path), str(current_path), overall, {"all": found}
    )
    print(f"report: {report}")
    _screenshot(report, work / "drift.png")
    jvm_pid = spark.sparkContext._jvm.ProcessHandle.current().pid()  # type: ignore[union-attr]
    rows = [
        (
            "platform (Spark, local[*])",
            statistics.median(times),
            _peak_mb(os.getpid()) + _peak_mb(int(jvm_pid)),
            ours,
        )
    ]
    spark.stop()

    if not args.skip_evidently:
        numeric = [f.name for f in features if not is_categorical(f)]
        categorical = [f.name for f in features if is_categorical(f)]
        python = _evidently_python(args.evidently_python)
        result = subprocess.run(
            [
                python,
                "-c",
                EVIDENTLY_SCRIPT,
                str(reference_path),
                str(current_path),
                json.dumps(numeric),
                json.dumps(categorical),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"Evidently failed:\n{result.stderr[-2000:]}")
        else:
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(
                (
                    "Evidently DataDriftPreset (pandas)",
                    measured["seconds"],
                    measured["peak_mb"],
                    sorted(measured["drifted"]),
                )
            )

    print(f"\n{'tool':<36} {'median s':>10} {'peak MB':>9}  flagged")
    for tool, seconds, peak, flagged in rows:
        print(f"{tool:<36} {seconds:>10.1f} {peak:>9.0f}  {', '.join(flagged) or '-'}")
    if len(rows) == 2:
        print(f"\nEvidently / platform time: {rows[1][1] / rows[0][1]:.1f}x")
        same = set(rows[0][3]) == set(rows[1][3])
        print(f"same features flagged: {'yes' if same else 'no'} (injected: {sorted(shifted)})")


if __name__ == "__main__":
    main()
