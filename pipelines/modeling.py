"""A quick baseline model on a training set, to show that the features carry signal."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


@dataclass(frozen=True)
class BaselineResult:
    train_rows: int
    test_rows: int
    test_label_rate: float
    auc: float
    # The model's scores (`score`: probability of the label) next to the label, for
    # monitoring (`pipelines.monitoring.scores`).
    train_scores: DataFrame
    test_scores: DataFrame


def train_logistic_baseline(
    train: DataFrame, test: DataFrame, *, label: str, features: list[str]
) -> BaselineResult:
    """Fit a logistic regression on `train` and report its ROC AUC on `test` (0.5 = no signal).

    Numeric features are median-imputed and scaled; string features are one-hot encoded with an
    explicit bucket for unseen and missing values, so the test period may contain new categories.
    """
    schema = {f.name: f.dataType for f in train.schema.fields}
    numeric = [c for c in features if isinstance(schema[c], T.NumericType)]
    categorical = [c for c in features if isinstance(schema[c], T.StringType)]

    def prepare(df: DataFrame) -> DataFrame:
        out = df.withColumn("label", F.col(label).cast("double"))
        for column in numeric:
            out = out.withColumn(column, F.col(column).cast("double"))
        for column in categorical:
            out = out.withColumn(column, F.coalesce(F.col(column), F.lit("(missing)")))
        return out

    indexed = [f"{c}__idx" for c in categorical]
    encoded = [f"{c}__vec" for c in categorical]
    imputed = [f"{c}__imp" for c in numeric]
    stages: list = []
    if numeric:
        stages.append(Imputer(inputCols=numeric, outputCols=imputed, strategy="median"))
        stages.append(
            VectorAssembler(inputCols=imputed, outputCol="numeric_raw", handleInvalid="keep")
        )
        stages.append(StandardScaler(inputCol="numeric_raw", outputCol="numeric_scaled"))
    if categorical:
        stages.append(
            StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep")
        )
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"))
    assembled = (["numeric_scaled"] if numeric else []) + encoded
    stages.append(VectorAssembler(inputCols=assembled, outputCol="features"))
    stages.append(
        LogisticRegression(featuresCol="features", labelCol="label", maxIter=50, regParam=0.01)
    )
    train_prepared = prepare(train).cache()
    test_prepared = prepare(test).cache()
    model = Pipeline(stages=stages).fit(train_prepared)
    scored = model.transform(test_prepared)
    auc = BinaryClassificationEvaluator(labelCol="label", metricName="areaUnderROC").evaluate(
        scored
    )
    stats = test_prepared.agg(F.count("*").alias("n"), F.avg("label").alias("rate")).collect()[0]
    result = BaselineResult(
        train_rows=train_prepared.count(),
        test_rows=int(stats["n"]),
        test_label_rate=float(stats["rate"] or 0.0),
        auc=float(auc),
        train_scores=_scores(model.transform(train_prepared)),
        test_scores=_scores(scored),
    )
    train_prepared.unpersist()
    test_prepared.unpersist()
    return result


def _scores(scored: DataFrame) -> DataFrame:
    probability = vector_to_array(F.col("probability"))[1]
    return scored.select(probability.alias("score"), F.col("label"))
