"""The exceptions mailflow raises on purpose, and what each one means for the caller.

    MailflowError                 base of everything below
    ├── ConfigError               settings.ini is wrong; the message names the key to fix
    ├── DeliveryError             an outgoing mail could not be handed over
    │     .permanent = True         the server refused it for good (5xx): do not retry
    │     .permanent = False        try again later (4xx, connection lost, server down)
    ├── PublishError              the blog did not take a page
    │     .permanent                as above
    └── SourceError               the mailbox could not be read (retried on the next pass)

Expected outcomes for incoming mail (a bounce, a duplicate, a half-answered reply) are
not exceptions: they are states with reasons (see states.py). Everything unexpected is
caught in exactly one place per unit of work, in worker.py.
"""


class MailflowError(Exception):
    """Base class: the message is written for the host, in plain words."""


class ConfigError(MailflowError):
    """A setting is missing or wrong; the text says which one and what to put there."""


class _RetryableError(MailflowError):
    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after  # seconds the server asked us to wait (HTTP Retry-After), or None


class DeliveryError(_RetryableError):
    """An outgoing message was not accepted; see `permanent`."""


class PublishError(_RetryableError):
    """A page was not published; see `permanent`."""


class SourceError(MailflowError):
    """The incoming mailbox could not be read this time."""
