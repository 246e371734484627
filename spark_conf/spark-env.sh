#!/usr/bin/env bash
# Sourced by spark-submit / spark-sql / pyspark (and so by the Python jobs)
# when SPARK_CONF_DIR is this folder. Everything that depends on the data
# directory is set here, once.
_fp_conf_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export FEATURE_PLATFORM_DATA_DIR="${FEATURE_PLATFORM_DATA_DIR:-$(dirname "$_fp_conf_dir")/data}"
unset _fp_conf_dir
mkdir -p "$FEATURE_PLATFORM_DATA_DIR"
_fp_data="$FEATURE_PLATFORM_DATA_DIR"
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-} -Dspark.sql.warehouse.dir=$_fp_data/warehouse -Dspark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$_fp_data/metastore_db;create=true -Dderby.system.home=$_fp_data"
unset _fp_data
