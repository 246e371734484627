"""One error hierarchy: every error class of the platform is a PlatformError, by one line
of inheritance, so the CLI's one boundary reports each as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pipelines
from features.errors import DeclarationError, PlatformError


def test_every_platform_error_descends_from_platform_error_alone():
    found = {}
    for info in pkgutil.walk_packages(pipelines.__path__, "pipelines."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = obj
    assert "pipelines.spark.SparkStartError" in found
    for name, error in found.items():
        assert issubclass(error, PlatformError), name
        assert len(error.__bases__) == 1, f"{name} inherits from {error.__bases__}"
    assert DeclarationError.__bases__ == (PlatformError,)
