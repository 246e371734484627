"""Feast's Redis online store, with a config that says what to do when the environment is unset.

`feature_repo/feature_store.yaml` takes its Redis settings from the environment, and
Feast leaves an unset `${VAR}` as it is. Feast's own config then fails deep in pydantic
("Input should be 'redis', 'redis_cluster' or 'redis_sentinel'"), which does not tell a
user who typed a plain `feast -c feature_repo plan` what was missing. This config checks
for unexpanded variables first and names them, with the command that sets them. The
store itself is Feast's, unchanged: every read and write path is Feast's Redis store.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from pydantic import model_validator

ONLINE_STORE_TYPE = "pipelines.serving.feast_online.PlatformRedisOnlineStore"
_UNEXPANDED = re.compile(r"\$\{(\w+)\}")


def unset_variables(values: dict[str, Any]) -> list[str]:
    """Names of `${VAR}` references Feast left unexpanded in the config's string values."""
    names = (_UNEXPANDED.findall(value) for value in values.values() if isinstance(value, str))
    return sorted({name for found in names for name in found})


class PlatformRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    type: Literal["pipelines.serving.feast_online.PlatformRedisOnlineStore"] = ONLINE_STORE_TYPE  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _variables_are_set(cls, values: Any) -> Any:
        if isinstance(values, dict) and (missing := unset_variables(values)):
            # A ValueError, not a platform error: pydantic turns it into the validation error
            # Feast reports (FeastConfigError), which is the one line the user sees.
            raise ValueError(
                f"{', '.join(missing)} not set: run "
                '`eval "$(feature-platform feast-env)"` first, '
                "or use `feature-platform feast <command>`, which sets them"
            )
        return values


class PlatformRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store; only its config class differs."""
