"""The CLI turns bad input into one clear line and a non-zero exit.

Each case runs the real command in a subprocess with its own data directory
(an embedded metastore admits one JVM at a time).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEATURE_PLATFORM_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_unknown_option_is_a_usage_error(tmp_path):
    result = _run(tmp_path, "generate", "--start", "2026-01-01", "--end", "2026-01-02", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr


@pytest.mark.parametrize(
    ("command", "start", "end", "message"),
    [
        ("generate", "2026-01-02", "2026-01-01", "empty or reversed interval"),
        ("ingest", "2026-01-01T05:00", "2026-01-01T05:00", "empty or reversed interval"),
    ],
)
def test_bad_interval_fails_with_one_line_before_spark_starts(
    tmp_path, command, start, end, message
):
    result = _run(tmp_path, command, "--start", start, "--end", end)
    assert result.returncode == 2
    errors = _error_lines(result)
    assert len(errors) == 1 and message in errors[0], result.stderr
    # No JVM was started: it would have created the metastore in the data directory.
    assert not (tmp_path / "data" / "metastore_db").exists()


def test_ingest_without_raw_tables_names_the_missing_table(tmp_path):
    result = _run(tmp_path, "ingest", "--start", "2026-01-01", "--end", "2026-01-02")
    assert result.returncode == 2
    errors = _error_lines(result)
    assert len(errors) == 1, result.stderr
    assert "raw.members does not exist" in errors[0]
    assert "feature-platform generate" in errors[0]


def test_online_read_without_redis_fails_with_one_line_and_starts_none(tmp_path):
    env_without_redis = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "online",
            "--service",
            "ctr_model",
            "--entity",
            "member_id=1",
            "--entity",
            "ad_id=2",
        ],
        capture_output=True,
        text=True,
        env={**env_without_redis, "FEATURE_PLATFORM_DATA_DIR": str(tmp_path / "data")},
        timeout=600,
    )
    assert result.returncode != 0
    errors = _error_lines(result)
    assert len(errors) == 1 and "no Redis to serve from: set REDIS_URL" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "redis").exists(), "serving must not start a Redis"
