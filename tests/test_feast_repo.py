"""The Feast repo built from the declarations: objects, config, CLI (plan/apply/list/teardown), serve.

The CLI runs in-process (Feast's click app) on a test-private registry. Source
validation reads the Delta tables through Spark; `test_materialize.py` runs
`feast materialize` on real tables, so here `--skip-source-validation` keeps
these tests free of Spark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

from features import REGISTRY
from pipelines.config import FEATURE_REPO_DIR
from pipelines.feast_repo import FEAST_TYPES, feast_objects
from pipelines.redis_server import free_port
from pipelines.serving.feast_online import ONLINE_STORE_TYPE
from pipelines.serving.materialize import layout_for
from pipelines.serving.redis_writer import write_table
from pipelines.serving.store import REDIS_CONNECTION_ENV, feast_environment

pytestmark = [
    pytest.mark.redis,
    # Feast warns that its Spark store API is experimental, on every use.
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]


def test_every_declaration_becomes_a_feast_object() -> None:
    objects = feast_objects()
    views = {o.name: o for o in objects.values() if type(o).__name__ == "FeatureView"}
    assert set(views) == {v.name for v in REGISTRY.views}
    for view in REGISTRY.views:
        fv = views[view.name]
        assert fv.ttl == view.effective_ttl
        assert fv.entities == [view.entity.name]
        assert [(f.name, f.dtype) for f in fv.features] == [
            (f.name, FEAST_TYPES[f.value_type]) for f in view.features
        ]
        assert [f.name for f in fv.entity_columns] == [view.entity.join_key]
        source = fv.batch_source
        assert source.table == view.table
        assert source.timestamp_field == "event_timestamp"
        assert source.created_timestamp_column == "created_timestamp"
    assert views["member_profile"].ttl == timedelta(0)
    services = {o.name: o for o in objects.values() if type(o).__name__ == "FeatureService"}
    assert set(services) == {s.name for s in REGISTRY.services}
    for service in REGISTRY.services:
        projected = {
            p.name: [f.name for f in p.features]
            for p in services[service.name].feature_view_projections
        }
        assert projected == REGISTRY.resolve(service.name)


def test_feature_store_yaml_keeps_one_spark_config_and_env_driven_redis() -> None:
    config = yaml.safe_load((FEATURE_REPO_DIR / "feature_store.yaml").read_text())
    assert config["entity_key_serialization_version"] == 3
    assert config["offline_store"] == {"type": "spark"}, "Spark settings live in spark_conf/ only"
    assert config["online_store"]["type"] == ONLINE_STORE_TYPE
    assert config["online_store"]["connection_string"] == "${" + REDIS_CONNECTION_ENV + "}"
    assert config["registry"]["path"].startswith("${FEATURE_PLATFORM_DATA_DIR}/")
    ignored = (FEATURE_REPO_DIR / ".feastignore").read_text()
    assert "data/" in ignored


def test_plain_feast_cli_without_the_environment_says_what_to_run(tmp_path) -> None:
    """A plain `feast -c feature_repo plan` in a shell that never ran feast-env."""
    bare_env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FEATURE_PLATFORM_") and name != "REDIS_URL"
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "feast"), "-c", str(FEATURE_REPO_DIR), "plan"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=bare_env,
        check=False,
    )
    assert result.returncode != 0
    last_lines = (result.stdout + result.stderr).strip().splitlines()[-4:]
    hint = next(line for line in last_lines if "not set" in line)
    assert "FEATURE_PLATFORM_REDIS_CONNECTION, FEATURE_PLATFORM_REDIS_TYPE not set" in hint
    assert 'eval "$(feature-platform feast-env)"' in hint
    assert not (FEATURE_REPO_DIR / "${FEATURE_PLATFORM_DATA_DIR}").exists()


@pytest.fixture
def feast_env(redis_url, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path))
    for name, value in feast_environment().items():
        monkeypatch.setenv(name, value)
    return tmp_path


def feast(*args: str) -> str:
    from feast.cli.cli import cli

    result = CliRunner().invoke(cli, ["-c", str(FEATURE_REPO_DIR), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def feast_process(*args: str) -> str:
    """The feast CLI in a fresh process: definitions are rebuilt, as on a later run."""
    feast_bin = Path(sys.executable).parent / "feast"
    result = subprocess.run(
        [str(feast_bin), "-c", str(FEATURE_REPO_DIR), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def registry_specs(path: Path) -> dict[str, bytes]:
    """Every object's spec in the registry file, without the timestamps apply refreshes."""
    from feast.protos.feast.core.Registry_pb2 import Registry

    registry = Registry()
    registry.ParseFromString(path.read_bytes())
    for view in registry.feature_views:
        view.spec.batch_source.ClearField("meta")
    for service in registry.feature_services:
        for projection in service.spec.features:
            projection.batch_source.ClearField("meta")
    for source in registry.data_sources:
        source.ClearField("meta")
    specs = {
        f"data_sources/{s.name}": s.SerializeToString(deterministic=True)
        for s in registry.data_sources
    }
    for kind in ("entities", "feature_views", "feature_services"):
        for obj in getattr(registry, kind):
            specs[f"{kind}/{obj.spec.name}"] = obj.spec.SerializeToString(deterministic=True)
    return specs


@pytest.mark.slow
def test_plan_apply_is_idempotent_and_teardown_removes_it(feast_env) -> None:
    first_plan = feast("plan", "--skip-source-validation")
    for view in REGISTRY.views:
        assert f"Created feature view {view.name}" in first_plan
    for service in REGISTRY.services:
        assert f"Created feature service {service.name}" in first_plan
    feast("apply", "--skip-source-validation")
    registry = feast_env / "feast" / "registry.db"
    applied = registry_specs(registry)

    listed = feast("feature-views", "list")
    for view in REGISTRY.views:
        assert view.name in listed
    assert "ctr_model" in feast("feature-services", "list")

    second_plan = feast_process("plan", "--skip-source-validation")
    assert "No changes to registry" in second_plan
    assert "No changes to infrastructure" in second_plan
    assert "Updated" not in second_plan
    second_apply = feast_process("apply", "--skip-source-validation")
    assert "Created" not in second_apply and "Deleted" not in second_apply
    assert registry_specs(registry) == applied

    feast("teardown")
    assert "member_engagement" not in feast("feature-views", "list")


def test_platform_passthrough_and_env(feast_env) -> None:
    from typer.testing import CliRunner as TyperRunner

    from pipelines.cli import app

    runner = TyperRunner()
    exports = runner.invoke(app, ["feast-env"])
    assert exports.exit_code == 0, exports.output
    assert f"export {REDIS_CONNECTION_ENV}=" in exports.output
    assert "export SPARK_CONF_DIR=" in exports.output

    applied = runner.invoke(app, ["feast", "apply", "--skip-source-validation"])
    assert applied.exit_code == 0, applied.output
    listed = runner.invoke(app, ["feast", "feature-views", "list"])
    assert listed.exit_code == 0, listed.output
    assert "ad_performance" in listed.output


@pytest.mark.slow
def test_feast_serve_reads_what_the_platform_wrote(feast_env, redis_url) -> None:
    feast("apply", "--skip-source-validation")
    when = datetime(2031, 5, 1, tzinfo=UTC)
    view = REGISTRY.view("member_profile")
    table = pa.table(
        {
            "member_id": pa.array([11], pa.int64()),
            "event_timestamp": pa.array([when], pa.timestamp("us", "UTC")),
            "created_timestamp": pa.array([when], pa.timestamp("us", "UTC")),
            "country": ["SE"],
            "plan": ["family"],
            "signup_date": pa.array([None], pa.date32()),
        }
    )
    write_table(redis_url, layout_for(view, "streaming_ads"), table)

    port = free_port()
    feast_bin = Path(sys.executable).parent / "feast"
    server = subprocess.Popen(
        [str(feast_bin), "-c", str(FEATURE_REPO_DIR), "serve", "-p", str(port), "--no-access-log"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        body = json.dumps(
            {
                "features": ["member_profile:country", "member_profile:plan"],
                "entities": {"member_id": [11, 12]},
            }
        ).encode()
        deadline = time.monotonic() + 240
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/get-online-features",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.load(response)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "feast serve did not answer"
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    names = answer["metadata"]["feature_names"]
    values = {name: result["values"] for name, result in zip(names, answer["results"], strict=True)}
    assert values["country"] == ["SE", None]
    assert values["plan"] == ["family", None]
