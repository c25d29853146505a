"""The `mailflow` command: a thin layer that reads settings, builds the app and prints for people.

Every command takes --config PATH (or MAILFLOW_CONFIG; default ./settings.ini).
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from mailflow.app import App, build_app
from mailflow.config import CONFIG_ENV, DEFAULT_CONFIG, Settings, load_settings
from mailflow.db import transaction
from mailflow.errors import MailflowError

logger = logging.getLogger(__name__)


def _fail_plainly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our own errors into one readable line and exit status 2, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MailflowError as exc:
            click.echo(f"mailflow: {exc}", err=True)
            sys.exit(2)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            click.echo(
                f"mailflow: the database could not be used ({reason}). Check [mailflow] database in your "
                "settings, that the disk is not full, and that no other program holds the database.",
                err=True,
            )
            sys.exit(2)

    return wrapper


@click.group()
@click.option(
    "--config",
    "config",
    envvar=CONFIG_ENV,
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"The settings file (also ${CONFIG_ENV}).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
@click.pass_context
def main(ctx: click.Context, config: str, verbose: bool) -> None:
    """mailflow: the email-driven processor behind The Job-Seeker's Interview."""
    ctx.obj = {"config": config, "verbose": verbose}


def _settings(ctx: click.Context) -> Settings:
    settings = load_settings(ctx.obj["config"])
    level = "DEBUG" if ctx.obj["verbose"] else settings.core.log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-migration chatter is for developers
    return settings


def _app(ctx: click.Context) -> App:
    return build_app(_settings(ctx))


@main.command()
@click.option("--once", is_flag=True, help="Run one full pass, then exit.")
@click.pass_context
@_fail_plainly
def run(ctx: click.Context, once: bool) -> None:
    """Read waiting mail, process it, send replies and publish interviews (every poll_seconds, or --once)."""
    from mailflow.worker import run_forever, run_pass

    app = _app(ctx)
    if once:
        report = run_pass(app)
        app.close()
        click.echo(report.summary())
        return
    poll = app.settings.incoming.integer("poll_seconds", 60)
    click.echo(f"mailflow is running: checking the mailbox every {poll} s. Press Ctrl-C to stop.")
    run_forever(app, poll)


@main.command()
@click.argument("eml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@_fail_plainly
def explain(ctx: click.Context, eml: Path) -> None:
    """Show how a message would be classified and read, touching nothing (a dry run)."""
    from mailflow.explain import explain_message

    settings = _settings(ctx)
    click.echo(explain_message(settings, eml.read_bytes()))


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@_fail_plainly
def deliver(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Drop messages (files, or one message on standard input) into the Maildir inbox, as an MTA would."""
    from mailflow.sources.delivery import deliver_to_maildir
    from mailflow.sources.maildir import MaildirSource

    settings = _settings(ctx)
    if settings.incoming.text("backend", "maildir") != "maildir":
        raise click.UsageError("deliver only works with [incoming] backend = maildir.")
    inbox = MaildirSource.from_section(settings.incoming).path
    payloads = [path.read_bytes() for path in files] if files else [sys.stdin.buffer.read()]
    for payload in payloads:
        deliver_to_maildir(inbox, payload)
    click.echo(f"Delivered {len(payloads)} message(s) to {inbox}.")


@main.command()
@click.option("--port", default=8000, show_default=True, help="Port to listen on (127.0.0.1 only).")
@click.pass_context
@_fail_plainly
def serve(ctx: click.Context, port: int) -> None:
    """Preview the static site at http://127.0.0.1:PORT/ (Ctrl-C to stop)."""
    settings = _settings(ctx)
    root = settings.blog.path("path", "var/site")
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        click.echo(f"Serving {root} at http://127.0.0.1:{port}/ . Press Ctrl-C to stop.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
@_fail_plainly
def status(ctx: click.Context, as_json: bool) -> None:
    """Counts by state, what waits, the last pass, failures, and when the next digest goes."""
    from mailflow.status import collect_status, format_status

    app = _app(ctx)
    try:
        report = collect_status(app)
    finally:
        app.close()
    click.echo(json.dumps(report, indent=2, default=str) if as_json else format_status(report))


def _host_command(ctx: click.Context, action: Callable[[Any, App], Any]) -> None:
    """Run one of the host's desk actions in a transaction and print its result."""
    app = _app(ctx)
    try:
        with transaction(app.engine) as session:
            app.take_crossover_turn(session)  # before any page or link: no waiting on a worker that waits on us
            result = action(session, app)
    finally:
        app.close()
    click.echo(result.text)
    if not result.ok:
        sys.exit(1)


@main.command()
@click.argument("number", type=int)
@click.pass_context
@_fail_plainly
def approve(ctx: click.Context, number: int) -> None:
    """Approve an interview waiting for review (review = yes): it is published on the next pass."""
    from mailflow import host

    _host_command(ctx, lambda session, app: host.approve(session, app, number))


@main.command()
@click.argument("number", type=int)
@click.argument("reason", nargs=-1)
@click.pass_context
@_fail_plainly
def reject(ctx: click.Context, number: int, reason: tuple[str, ...]) -> None:
    """Reject an interview waiting for review; it is never published."""
    from mailflow import host

    _host_command(ctx, lambda session, app: host.reject(session, app, number, " ".join(reason)))


@main.command()
@click.argument("number", type=int)
@click.pass_context
@_fail_plainly
def withdraw(ctx: click.Context, number: int) -> None:
    """Take an interview down and delete its answers (its number stays retired)."""
    from mailflow import host

    _host_command(ctx, lambda session, app: host.host_withdraw(session, app, number))


@main.command()
@click.argument("first", type=int)
@click.argument("second", type=int)
@click.pass_context
@_fail_plainly
def link(ctx: click.Context, first: int, second: int) -> None:
    """Link two interviews as a cross-over (wins over the automatic links)."""
    from mailflow import host

    _host_command(ctx, lambda session, app: host.set_link(session, app, first, second, add=True))


@main.command()
@click.argument("first", type=int)
@click.argument("second", type=int)
@click.pass_context
@_fail_plainly
def unlink(ctx: click.Context, first: int, second: int) -> None:
    """Remove a cross-over between two interviews, even an automatic one."""
    from mailflow import host

    _host_command(ctx, lambda session, app: host.set_link(session, app, first, second, add=False))


@main.command()
@click.argument("message_id", type=int)
@click.pass_context
@_fail_plainly
def retry(ctx: click.Context, message_id: int) -> None:
    """Read a failed incoming message again on the next pass (see `mailflow status` for failures)."""
    from mailflow import host

    _host_command(ctx, lambda session, app: host.retry_message(session, message_id))


@main.command()
@click.option("--send", is_flag=True, help="Queue it for the host now, even if nothing is new, and send it.")
@click.pass_context
@_fail_plainly
def digest(ctx: click.Context, send: bool) -> None:
    """Show the host's digest of what happened since the last one (--send: email it now)."""
    from mailflow.digest import collect, last_digest, send_digest
    from mailflow.sending import send_all
    from mailflow.worker import pass_lock

    app = _app(ctx)
    try:
        if send:
            send_digest(app, force=True)
            # Send only when no pass is running: a pass's background sender may hold emails
            # that are not yet recorded as sent, and they must not go twice.
            with pass_lock(app) as free:
                if not free:
                    click.echo("A pass is running: the digest is queued and goes out with it (or the next one).")
                    return
                send_all(app)
            click.echo(f"Digest sent to {app.settings.core.host_address}.")
            return
        with transaction(app.engine) as session:
            content = collect(session, app, last_digest(session))
        click.echo(app.renderer.email("digest", **app.email_context(), digest=content).text)
    finally:
        app.close()


@main.command()
@click.argument("address")
@click.option("--keep-interview", is_flag=True, help="Leave their interview published, only unlinked from them.")
@click.pass_context
@_fail_plainly
def forget(ctx: click.Context, address: str, keep_interview: bool) -> None:
    """Remove everything kept about the person writing from ADDRESS (their interview comes down too)."""
    from mailflow.privacy import forget as forget_person

    app = _app(ctx)
    try:
        report = forget_person(app, address, keep_interviews=keep_interview)
    finally:
        app.close()
    numbers = ", ".join(f"{n:05d}" for n in report.interviews) or "none"
    click.echo(f"Forgotten: interviews {numbers}; {report.messages} messages and {report.emails} emails erased.")


@main.command()
@click.option("--send-test", "send_test", metavar="ADDRESS", help="Also send a test email to ADDRESS.")
@click.pass_context
@_fail_plainly
def doctor(ctx: click.Context, send_test: str | None) -> None:
    """Check the mailbox, mail server and blog settings by connecting; sends nothing unless --send-test."""
    from mailflow.doctor import DoctorOptions, render_findings, run_checks

    findings = run_checks(_settings(ctx), DoctorOptions(send_test=send_test))
    click.echo(render_findings(findings))
    ctx.exit(1 if any(not finding.ok for finding in findings) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
