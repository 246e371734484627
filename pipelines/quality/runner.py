"""Run expectation suites on Spark DataFrames with Great Expectations 1.x.

`QualityRunner` owns one ephemeral GE context for a run: a Spark data source, and per
validated DataFrame an asset with a whole-DataFrame batch definition, a suite, a
validation definition and a checkpoint whose action renders Data Docs into a local,
file-based site. It validates any DataFrame against any list of expectations (or a
function that builds one), so other checks can reuse it.

GE is asked for pass/fail only (result format BOOLEAN_ONLY: its partial-unexpected
lists cost extra Spark jobs per expectation on every run). For the few expectations that
fail, the runner lists offending rows itself with the Spark SQL each expectation carries
in its meta (see pipelines.quality.expectations).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import great_expectations as gx
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.expectation import Expectation
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.quality.expectations import COLUMNS, COUNTS, EXAMPLES_SQL, RULES
from pipelines.quality.report import Failure, TableResult

SITE_NAME = "local_site"
INDEX_LIMIT = 100
SuiteBuilder = Callable[[DataFrame], Iterable[Expectation]]
ResultFormat = Literal["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"]

_SCHEMA_TYPES = ("expect_table_columns_to_match_set", "expect_column_values_to_be_of_type")


def ephemeral_context(docs_dir: Path, results_dir: Path) -> Any:
    """An in-memory GE context whose validation results and Data Docs live in folders.

    Suites, validation definitions and checkpoints are rebuilt every run and stay in
    memory. Validation results go to `results_dir`: the Data Docs index lists the
    results its context knows and deletes pages of any other, so with in-memory results
    each run would wipe the pages of the runs before it.
    """
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            # The index is rebuilt after every validation: keep that cost bounded.
            "validation_results_limit": INDEX_LIMIT,
        },
    }
    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(results_dir),
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        data_docs_sites={SITE_NAME: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


class QualityRunner:
    """Validates Spark DataFrames, one suite each, writing Data Docs under `docs_dir`.

    Validation results (JSON) are kept in `results_dir`, by default next to `docs_dir`.
    """

    def __init__(
        self,
        docs_dir: Path,
        *,
        run_name: str,
        results_dir: Path | None = None,
        result_format: ResultFormat = "BOOLEAN_ONLY",
        max_examples: int = 5,
    ) -> None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        self.docs_dir = docs_dir
        self.run_name = run_name
        self.result_format = result_format
        self.max_examples = max_examples
        results_dir = results_dir or docs_dir.parent / "validation_results"
        self._context = ephemeral_context(docs_dir, results_dir)
        # The runner caches each DataFrame itself, around the checks and the examples.
        self._source = self._context.data_sources.add_spark(name="spark", persist=False)
        self._names: set[str] = set()
        # GE logs each metric it cannot compute; the failures are reported here instead.
        logging.getLogger("great_expectations").setLevel(logging.ERROR)

    @property
    def docs_index(self) -> Path:
        return self.docs_dir / "index.html"

    def validate_with(
        self, name: str, df: DataFrame, build_suite: SuiteBuilder, *, notes: Sequence[str] = ()
    ) -> TableResult:
        """Validate `df` against the expectations `build_suite(df)` returns."""
        return self.validate(name, df, list(build_suite(df)), notes=notes)

    def validate(
        self,
        name: str,
        df: DataFrame,
        expectations: Iterable[Expectation],
        *,
        notes: Sequence[str] = (),
    ) -> TableResult:
        """Run one suite on `df` (cached for the run) and report failures with examples."""
        started = time.perf_counter()
        name = self._unique(name)
        suite = self._context.suites.add(
            gx.ExpectationSuite(name=name, expectations=[copy.copy(e) for e in expectations])
        )
        batch = self._source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(
            name="whole_dataframe"
        )
        definition = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        checkpoint = self._context.checkpoints.add(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE_NAME])],
                result_format=self.result_format,
            )
        )
        cached = df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            rows = cached.count()
            outcome = checkpoint.run(
                batch_parameters={"dataframe": cached}, run_id=RunIdentifier(run_name=self.run_name)
            )
            ((identifier, suite_result),) = outcome.run_results.items()
            failures = tuple(
                failure
                for result in suite_result.results
                if not result.success
                for failure in self._failures(result, cached, rows)
            )
        finally:
            cached.unpersist()
        return TableResult(
            name=name,
            success=bool(suite_result.success),
            expectations=len(suite_result.results),
            rows=rows,
            seconds=time.perf_counter() - started,
            failures=failures,
            notes=tuple(notes),
            docs_page=self._docs_page(identifier),
        )

    def _unique(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self._names:
            n += 1
            candidate = f"{name}_{n}"
        self._names.add(candidate)
        return candidate

    def _docs_page(self, identifier: Any) -> Path | None:
        urls = self._context.get_docs_sites_urls(
            resource_identifier=identifier, site_name=SITE_NAME
        )
        url = urls[0].get("site_url") if urls else None
        return Path(unquote(urlparse(url).path)) if url else None

    def _failures(self, result: Any, df: DataFrame, rows: int) -> list[Failure]:
        config = result.expectation_config
        meta: Mapping[str, Any] = config.meta or {}
        description = config.description or f"{config.type} {dict(config.kwargs)}"
        error = _exception_message(result.exception_info)
        if error:
            columns = tuple(meta.get(COLUMNS) or ())
            return [Failure(config.type, description, columns, f"could not be evaluated: {error}")]
        if config.type in _SCHEMA_TYPES:
            columns = tuple(meta.get(COLUMNS) or ())
            return [Failure(config.type, description, columns, _observed_schema(config, df))]
        # A bundle of row rules fails as one expectation; report each broken rule.
        broken = [
            failure
            for rule in meta.get(RULES) or ()
            if (failure := self._evidence(config.type, rule["description"], rule, df, rows))
        ]
        return broken or [
            self._evidence(config.type, description, meta, df, rows)
            or Failure(config.type, description, tuple(meta.get(COLUMNS) or ()), "failed")
        ]

    def _evidence(
        self, kind: str, description: str, meta: Mapping[str, Any], df: DataFrame, rows: int
    ) -> Failure | None:
        """The failure with examples from its SQL over the batch; None if no row offends."""
        columns = tuple(meta.get(COLUMNS) or ())
        examples_sql = meta.get(EXAMPLES_SQL)
        if not examples_sql:
            return None
        try:
            offending = _readable(df.sparkSession.sql(examples_sql, batch=df))
            examples = offending.limit(self.max_examples).collect()
            if not examples:
                return None
            unit = meta.get(COUNTS)
            observed = f"{offending.count()} {unit} of {rows} rows" if unit else ""
        except AnalysisException as exc:  # e.g. a column the schema check already reports
            first_line = str(exc).strip().splitlines()[0]
            return Failure(kind, description, columns, f"examples unavailable: {first_line}")
        return Failure(
            kind,
            description,
            columns,
            observed,
            tuple({k: str(v) for k, v in row.asDict().items()} for row in examples),
            examples_label="e.g." if unit else "observed",
        )


def _readable(df: DataFrame) -> DataFrame:
    """Timestamps as UTC strings (Spark's session zone), not driver-local datetimes."""
    return df.select(
        *[
            F.col(f.name).cast("string").alias(f.name)
            if isinstance(f.dataType, T.TimestampType)
            else F.col(f.name)
            for f in df.schema.fields
        ]
    )


def _observed_schema(config: Any, df: DataFrame) -> str:
    kwargs = config.kwargs
    if config.type == "expect_column_values_to_be_of_type":
        column = kwargs["column"]
        if column not in df.columns:
            return f"observed: no column {column}"
        return f"observed: {type(df.schema[column].dataType).__name__}"
    expected, present = set(kwargs["column_set"]), set(df.columns)
    missing, extra = sorted(expected - present), sorted(present - expected)
    parts = [f"missing {', '.join(missing)}"] if missing else []
    if extra and kwargs.get("exact_match"):
        parts.append(f"unexpected {', '.join(extra)}")
    return "observed: " + ("; ".join(parts) or "columns differ")


def _exception_message(info: Any) -> str | None:
    """GE reports errors either flat or keyed by metric; return the first message."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None
