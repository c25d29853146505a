"""A worker process for the benchmarks: `mailflow run --once` in a fresh interpreter, timed from inside.

    python -m benchmarks.child SETTINGS [--profile OUT.txt]

Imports first and prints "ready"; waits for a line on stdin (so several workers start
together and interpreter start-up is not timed); then runs the real command line
(`mailflow --config SETTINGS run --once`) and prints one JSON line: seconds, peak RSS
(VmHWM of this process, and of the second process that reads a backlog, as it logs it),
RSS before the run, and the pass summary it printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import resource
import sys
import time


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ReaderPeak(logging.Handler):
    """Keeps the background reader's peak memory from its closing log line."""

    peak_kb = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.peak_kb = max(self.peak_kb, int(getattr(record, "peak_kb", 0)))


def main() -> None:
    settings = sys.argv[1]
    profile_to = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--profile" else None
    import mailflow.worker  # noqa: F401  (imported lazily by the command; not part of the timed run)
    from mailflow.cli import main as mailflow_main

    before = rss_mb()
    reader = ReaderPeak()
    logging.getLogger("mailflow.background_reading").addHandler(reader)
    logging.getLogger("mailflow.background_reading").setLevel(logging.INFO)
    print("ready", flush=True)
    sys.stdin.readline()
    profiler = None
    if profile_to:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    output = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(output):
        mailflow_main(["--config", settings, "run", "--once"], standalone_mode=False)
    seconds = time.perf_counter() - started
    if profiler is not None and profile_to is not None:
        profiler.stop()
        with open(profile_to, "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork + exec, so a worker started by
    # a big parent (this runner after the 10,000-interview site) would report the parent's peak.
    peak = rss_mb("VmHWM")
    assert peak <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "reader_peak_mb": reader.peak_kb / 1024,
                      "rss_before_mb": before, "summary": output.getvalue().strip()}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
