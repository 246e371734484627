from __future__ import annotations

import re
import subprocess
from xml.etree import ElementTree

from pipelines.config import SPARK_CONF_DIR


def test_session_uses_project_conf(spark, data_dir):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.sql.warehouse.dir").endswith(f"{data_dir}/warehouse")
    assert spark.conf.get("spark.sql.catalogImplementation") == "hive"


def test_delta_table_in_persistent_catalog(spark, data_dir):
    spark.sql("CREATE DATABASE IF NOT EXISTS smoke")
    spark.sql("CREATE OR REPLACE TABLE smoke.t (id BIGINT) USING delta")
    spark.sql("INSERT INTO smoke.t VALUES (1), (2)")
    detail = spark.sql("DESCRIBE DETAIL smoke.t").collect()[0]
    assert detail["format"] == "delta"
    assert str(data_dir) in detail["location"]
    assert (data_dir / "metastore_db").is_dir()
    spark.sql("DROP TABLE smoke.t")


def test_spark_env_defaults_data_dir_to_checkout():
    out = subprocess.run(
        [
            "bash",
            "-c",
            f"unset FEATURE_PLATFORM_DATA_DIR; source {SPARK_CONF_DIR}/spark-env.sh; "
            "echo $FEATURE_PLATFORM_DATA_DIR; echo $SPARK_SUBMIT_OPTS",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == str(SPARK_CONF_DIR.parent / "data")
    assert f"-Dspark.sql.warehouse.dir={out[0]}/warehouse" in out[1]


def test_the_jvm_writes_to_a_log_file_not_the_terminal(spark, data_dir, capfd):
    from pipelines.spark import spark_log

    log = spark_log()
    assert log is not None and log.parent == data_dir / "logs" / "runs"
    # The session was started inside this process: its jar resolution went to the file.
    assert ":: resolving dependencies ::" in log.read_text()
    spark.sparkContext._jvm.java.lang.System.err.println("from the JVM's stderr")
    spark.sparkContext._jvm.java.lang.System.err.flush()
    out, err = capfd.readouterr()
    assert "from the JVM's stderr" not in out + err
    assert "from the JVM's stderr" in log.read_text()


def test_jars_resolve_from_maven_central_only(spark):
    from pipelines.spark import spark_log

    settings_file = SPARK_CONF_DIR / "ivysettings.xml"
    assert spark.conf.get("spark.jars.ivySettings") == str(settings_file)
    remote_roots = {
        element.get("root")
        for element in ElementTree.parse(settings_file).iter()
        if element.get("root") is not None
    }
    assert remote_roots == {"https://repo1.maven.org/maven2/"}
    log = spark_log()
    assert log is not None
    resolution = log.read_text()
    # The launcher read the file, and every artifact it found came from that chain.
    assert f":: loading settings :: file = {settings_file}" in resolution
    sources = set(re.findall(r"^\s*found \S+ in (\S+)$", resolution, flags=re.MULTILINE))
    assert sources and sources <= {"spark-list", "central"}
    assert "spark-packages" not in resolution
