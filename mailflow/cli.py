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
from sqlmodel import func, select

from mailflow.app import App, build_app
from mailflow.config import CONFIG_ENV, DEFAULT_CONFIG, Settings, load_settings
from mailflow.db import transaction
from mailflow.errors import MailflowError
from mailflow.models import InboundMessage, OutboxItem, Publication
from mailflow.numbering import current_count

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
    from mailflow.sources.maildir import MaildirSource
    from mailflow.sources.delivery import deliver_to_maildir

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
    """Counts by state: messages, outgoing mail, publications, and the interview counter."""
    app = _app(ctx)
    with transaction(app.engine) as session:
        report: dict[str, Any] = {"interviews": current_count(session)}
        for label, model in (("messages", InboundMessage), ("outgoing", OutboxItem), ("publications", Publication)):
            rows = session.exec(select(model.state, func.count()).group_by(model.state)).all()  # type: ignore[attr-defined]
            report[label] = dict(sorted((state, count) for state, count in rows))
    app.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Interviews so far: {report['interviews']:05d}")
    for label in ("messages", "outgoing", "publications"):
        counts = ", ".join(f"{count} {state}" for state, count in report[label].items()) or "none"
        click.echo(f"{label.capitalize()}: {counts}")


if __name__ == "__main__":  # pragma: no cover
    main()

