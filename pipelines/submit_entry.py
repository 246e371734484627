"""Entry point that `spark-submit` runs on a cluster: `submit_entry.py STEP START END [OPTIONS]`
(OPTIONS: the step's options as JSON)."""

from __future__ import annotations

import json
import os
import sys

if __name__ == "__main__":
    # Run the step in this driver, not by submitting again.
    os.environ["FEATURE_PLATFORM_TASK_RUNNER"] = "local"
    from pipelines.tasks import run

    step, start, end = sys.argv[1:4]
    options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    print(run(step, start, end, **options))
