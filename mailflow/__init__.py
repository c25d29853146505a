"""mailflow: the email-driven processor behind The Job-Seeker's Interview.

Mail comes in from a source, is classified and parsed, gets a number; replies go out
through the outbox and interviews go out through a publisher.
"""

__version__ = "0.1.0"
