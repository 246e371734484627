"""Execution layer: Spark jobs, Redis, Feast and checks, driven by `features/` declarations."""
