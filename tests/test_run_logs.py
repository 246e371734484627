"""Engine output redirected to a run log: a child process started inside writes to the
file, the caller gets its descriptors back, and a process without them is left alone."""

from __future__ import annotations

import subprocess
import sys

from pipelines.run_logs import output_to


def test_a_child_started_inside_writes_to_the_file_and_the_terminal_comes_back(
    tmp_path, capfd
) -> None:
    log = tmp_path / "engine.log"
    with output_to(log):
        subprocess.run(
            [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
            check=True,
        )
    print("after")
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "")
    assert log.read_text().splitlines() == ["out", "err"]


def test_a_process_without_standard_descriptors_is_left_alone(tmp_path) -> None:
    marker = tmp_path / "done"
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from pipelines.run_logs import output_to\n"
        "os.close(1); os.close(2)\n"
        f"with output_to(Path({str(tmp_path / 'engine.log')!r})):\n"
        "    pass\n"
        f"Path({str(marker)!r}).write_text('ok')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert marker.read_text() == "ok"
