"""A test's process that ends by itself is reported (exit code and log), one that the test
stopped is not: what lets a test fail on a crashed replica instead of a refused connection."""

from __future__ import annotations

import sys
from pathlib import Path

from mimir_edge.localstack.processes import Process

from tests.waiting import wait_for


def started(tmp_path: Path, code: str) -> Process:
    process = Process("probe", [sys.executable, "-c", code], tmp_path / "probe.log")
    process.start(lambda: True, timeout_s=10)
    return process


def test_an_exit_nobody_asked_for_is_reported_with_its_code_and_log(tmp_path: Path) -> None:
    process = started(tmp_path, "print('about to fail', flush=True); raise SystemExit(70)")
    wait_for(lambda: not process.running(), timeout_s=30, what="the probe to exit")
    report = process.exited_unasked()
    assert report is not None
    assert "exited by itself with 70" in report and "about to fail" in report


def test_a_running_process_and_a_stopped_one_are_not_reported(tmp_path: Path) -> None:
    process = started(tmp_path, "import time; time.sleep(60)")
    assert process.exited_unasked() is None
    process.stop()
    assert not process.running()
    assert process.exited_unasked() is None


def test_terminate_and_kill_count_as_asked(tmp_path: Path) -> None:
    for end in (Process.terminate, Process.kill):
        process = started(tmp_path, "import time; time.sleep(60)")
        end(process)
        assert process.popen is not None
        process.popen.wait(30)
        assert process.exited_unasked() is None
