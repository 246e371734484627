# Airflow 3 with Java (for Spark in local mode or as a spark-submit client)
# and the platform installed from the mounted checkout.
FROM apache/airflow:3.2.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
USER airflow
COPY --chown=airflow:root pyproject.toml README.md /opt/feature-platform/
COPY --chown=airflow:root features /opt/feature-platform/features
COPY --chown=airflow:root pipelines /opt/feature-platform/pipelines
RUN pip install --no-cache-dir -e /opt/feature-platform
