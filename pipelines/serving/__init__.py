"""Serving: features from the Delta feature tables into Redis, and back out through Feast.

- `materialize`: Spark job writing the latest row per entity in Feast's Redis layout;
- `online`: `get_online_features` through Feast's FeatureStore (the reference read path);
- `direct`: `OnlineReader`, the serving read path straight from Feast's Redis layout;
- `store`: the Feast repo's environment (data dir, Redis connection, Spark config);
- `encoding`, `redis_writer`: Feast's byte layout built column-wise, and the executor-side writer;
- `commands`: the `feature-platform materialize | online | feast | feast-env | redis` commands.
"""
