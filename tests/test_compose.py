"""docker-compose.yml must load as Docker Compose loads it (compose-go, the reference loader)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / ".ci" / "composecheck"


@pytest.fixture(scope="module")
def composecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("Go toolchain not installed: cannot build the compose-go checker")
    binary = tmp_path_factory.mktemp("composecheck") / "composecheck"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=CHECKER, check=True, timeout=600)
    return binary


def test_compose_file_loads(composecheck: Path):
    result = subprocess.run(
        [str(composecheck), str(ROOT / "docker-compose.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    services = ("redis", "kafka", "postgres", "spark-master", "spark-worker", "airflow-scheduler")
    for service in services:
        assert f"  {service}:" in result.stdout


def test_checker_rejects_an_invalid_file(composecheck: Path, tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: redis\n    ports: 12\n    bogus_key: 1\n")
    result = subprocess.run([str(composecheck), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "bogus_key" in result.stderr or "ports" in result.stderr
