"""A worker to be killed: run by tests/test_crash_kill.py as a fork server.

Importing mailflow takes about a second, too long to pay thirty times, so this
process imports once and then, for each line `run SEED MODE` on stdin, forks a child that
builds the app from the settings file and runs `mailflow.worker.run_pass` in a loop, the way
`mailflow run` does. The test kills that child with SIGKILL; the parent reaps it and reports
`exit PID STATUS`. The child appends what it hands to the outbox and the publisher to a
journal (one os.write per line, so a kill never leaves half a line), which is how the test
sees re-sends that the idempotent Maildir outbox would otherwise hide.

MODE is one of
    random            pass after pass forever, with short random sleeps inside outbox.send and
                      publisher.publish so that kills land there too; the test kills it;
    drain             pass after pass until one does nothing, then exit 0;
    POINT:N           like drain, but SIGKILL itself at the Nth call of POINT, where POINT is
                      render (inside the transaction that numbers a reply), send-before,
                      send-after, publish-before, publish-after, listing or file-after.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

from mailflow.app import App, build_app
from mailflow.config import load_settings
from mailflow.worker import PassReport, run_pass


class Journal:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, *words: object) -> None:
        os.write(self.fd, (" ".join(str(w) for w in (os.getpid(), *words)) + "\n").encode())


def instrument(app: App, journal: Journal, mode: str, rng: random.Random) -> None:
    """Wrap the seams the pass hands work to: journal every call, sleep or die where asked."""
    point, _, nth = mode.partition(":")
    target = int(nth) if nth else 0
    calls: dict[str, int] = {}

    def checkpoint(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1
        if name == point and calls[name] == target:
            journal.write("self-kill", name)
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "random":
            time.sleep(rng.uniform(0, 0.012))

    outbox_send, publish, refresh, render, file = (
        app.outbox.send,
        app.publisher.publish,
        app.publisher.refresh_listing,
        app.renderer.email,
        app.source.file,
    )

    def send(mail):  # type: ignore[no-untyped-def]
        journal.write("send-start", mail.outbox_id, mail.message_id)
        checkpoint("send-before")
        outbox_send(mail)
        journal.write("send-done", mail.outbox_id)
        checkpoint("send-after")

    def publish_page(page, *args, **kwargs):  # type: ignore[no-untyped-def]
        journal.write("publish-start", page.number)
        checkpoint("publish-before")
        placement = publish(page, *args, **kwargs)
        journal.write("publish-done", page.number)
        checkpoint("publish-after")
        return placement

    def refresh_listing(*args, **kwargs):  # type: ignore[no-untyped-def]
        checkpoint("listing")
        return refresh(*args, **kwargs)

    def render_email(name, **context):  # type: ignore[no-untyped-def]
        if name == "numbered":
            checkpoint("render")
        return render(name, **context)

    def file_copy(outcomes):  # type: ignore[no-untyped-def]
        file(outcomes)
        checkpoint("file-after")

    app.outbox.send = send  # type: ignore[method-assign]
    app.publisher.publish = publish_page  # type: ignore[method-assign]
    app.publisher.refresh_listing = refresh_listing  # type: ignore[method-assign]
    app.renderer.email = render_email  # type: ignore[method-assign]
    app.source.file = file_copy  # type: ignore[method-assign]


def did_nothing(report: PassReport) -> bool:
    return not (
        report.fetched
        or report.decided
        or report.sent
        or report.published
        or report.filed
        or report.send_failures
        or report.publish_failures
    )


def child(settings: Path, journal_path: Path, seed: int, mode: str) -> None:
    journal = Journal(journal_path)
    app = build_app(load_settings(settings))
    instrument(app, journal, mode, random.Random(seed))
    journal.write("start", seed, mode)
    print(f"ready {os.getpid()}", flush=True)
    while True:
        report = run_pass(app)
        journal.write("pass", report.summary().replace(" ", "_"))
        if mode != "random" and did_nothing(report):
            print(f"drained {os.getpid()}", flush=True)
            os._exit(0)
        if did_nothing(report):
            time.sleep(0.01)


def main() -> None:
    settings, journal = Path(sys.argv[1]), Path(sys.argv[2])
    print("zygote ready", flush=True)
    for line in sys.stdin:
        command, seed, mode = line.split()
        assert command == "run"
        pid = os.fork()
        if pid == 0:
            try:
                child(settings, journal, int(seed), mode)
            except BaseException:  # noqa: BLE001 - whatever it was, report it and never return into the parent loop
                traceback.print_exc()
            os._exit(3)  # an exception in the child: the test sees exit status 3
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
