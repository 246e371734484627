"""The platform's redis-server: start, reuse, stop, REDIS_URL, and fast clear failures."""

from __future__ import annotations

import time

import pytest

from pipelines.config import settings
from pipelines.redis_server import (
    RedisNotConfiguredError,
    RedisServer,
    RedisUnavailableError,
    check_redis,
    ensure_redis,
    feast_connection_string,
    free_port,
    redis_client,
    serving_redis_url,
)

pytestmark = pytest.mark.redis


def test_start_reuse_and_stop(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis")
    with server:
        assert server.started_here
        client = redis_client(server.url)
        client.set("greeting", "hello")
        pid = server.pid()
        assert pid is not None
        assert (tmp_path / "redis" / "redis.pid").exists()

        again = RedisServer(tmp_path / "redis").start()
        assert not again.started_here, "a running server must be reused, not restarted"
        assert again.pid() == pid
        assert again.url == server.url
        assert redis_client(again.url).get("greeting") == b"hello"
        with again:  # a reused server is not stopped by a context it did not start
            pass
        assert server.is_running()
    assert server.pid() is None
    with pytest.raises(RedisUnavailableError):
        check_redis(server.url)


def test_restart_keeps_the_data(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    redis_client(server.url).hset("hash", "field", "value")
    server.stop()
    restarted = RedisServer(tmp_path / "redis").start()
    try:
        assert redis_client(restarted.url).hget("hash", "field") == b"value"
    finally:
        restarted.stop()


def test_local_server_lives_under_the_data_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    url = ensure_redis()
    try:
        check_redis(url)
        assert url.startswith("redis://127.0.0.1:")
        assert (tmp_path / "redis" / "redis.pid").exists()
        assert ensure_redis() == url  # reused
    finally:
        RedisServer(settings().redis_dir).stop()


def test_redis_url_is_honoured(redis_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert ensure_redis() == redis_server.url
    assert not (tmp_path / "redis").exists(), "no local server may start when REDIS_URL is set"


def test_unreachable_redis_fails_fast_with_one_clear_message(tmp_path, monkeypatch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("REDIS_URL", url)
    began = time.monotonic()
    with pytest.raises(RedisUnavailableError, match=r"cannot reach Redis at redis://127\.0\.0\.1"):
        ensure_redis()
    assert time.monotonic() - began < 5


def test_wrong_or_missing_password_is_a_clear_error(tmp_path) -> None:
    with RedisServer(tmp_path / "secured", password="s3cret") as server:
        check_redis(server.url)
        wrong = server.url.replace("s3cret", "guess")
        with pytest.raises(RedisUnavailableError, match="rejected the password") as info:
            check_redis(wrong)
        assert "guess" not in str(info.value), "passwords must not be printed"
        missing = server.url.replace(":s3cret@", "")
        with pytest.raises(RedisUnavailableError, match="requires a password"):
            check_redis(missing)


def test_feast_connection_string() -> None:
    assert feast_connection_string("redis://:pw@10.0.0.5:6380/2").startswith(
        "10.0.0.5:6380,db=2,password=pw,"
    )
    assert "ssl=true" in feast_connection_string("rediss://cache.example:6379/0")


def test_serving_reads_only_a_redis_someone_chose(tmp_path, monkeypatch) -> None:
    from pipelines.serving.direct import OnlineReader

    monkeypatch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(RedisNotConfiguredError) as info:
        OnlineReader("ctr_model")
    assert "\n" not in str(info.value)
    assert "set REDIS_URL" in str(info.value) and "feature-platform redis start" in str(info.value)
    assert not (tmp_path / "redis").exists(), "a reader must never start a server"
    url = ensure_redis()  # the explicit development choice
    try:
        assert serving_redis_url() == url
        with OnlineReader("ctr_model") as reader:
            assert reader.get([{"member_id": 1, "ad_id": 2}])["member_id"] == [1]
    finally:
        RedisServer(settings().redis_dir).stop()
