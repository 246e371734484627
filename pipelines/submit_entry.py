"""Entry point that `spark-submit` runs on a cluster: `submit_entry.py STEP START END [OPTIONS]`
(OPTIONS: the step's options as JSON). START and END are the step's own interval."""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    from pipelines.interval import Interval
    from pipelines.spark import get_spark
    from pipelines.steps import step_named

    name, start, end = sys.argv[1:4]
    options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    step = step_named(name)
    result = step.run(get_spark(f"feature-platform-{name}"), Interval.parse(start, end), **options)
    print(json.dumps(dict(result.summary)))
