"""Reading the host's own mail server's verdict on a sender (Authentication-Results, RFC 8601).

Only headers stamped with the host's authserv-id count: anyone can write an
Authentication-Results header into a message, but only the receiving server's own one,
added on top, can be trusted. With no authserv_id configured this check is off.
"""

from __future__ import annotations

import re
from typing import Literal

from mailflow.parsing import ParsedMail

Verdict = Literal["pass", "fail", "none"]

_RESULT = re.compile(r"\b(dmarc|spf|dkim)\s*=\s*([a-z]+)", re.IGNORECASE)
_IDENTITY = re.compile(r"\b(?:smtp\.mailfrom|header\.d|header\.i|header\.from)\s*=\s*([^\s;]+)", re.IGNORECASE)


def sender_authentication(mail: ParsedMail, authserv_id: str) -> Verdict:
    """pass: DMARC passed (or, without DMARC, SPF or DKIM passed for the From domain itself);
    fail: DMARC failed (or SPF failed with no passing DKIM); none: no trusted verdict (or the
    check is off). Only the topmost header of the host's server counts: the ones below it
    may have been written by anyone."""
    if not authserv_id:
        return "none"
    header = next((h for h in mail.header_values("Authentication-Results") if _server(h) == authserv_id.lower()), None)
    if header is None:
        return "none"
    domain = mail.from_address.rsplit("@", 1)[-1].lower()
    results: dict[str, set[str]] = {"dmarc": set(), "spf": set(), "dkim": set()}
    for clause in header.split(";")[1:]:
        found = _RESULT.search(clause)
        if found is None:
            continue
        method, result = found.group(1).lower(), found.group(2).lower()
        if method in ("spf", "dkim") and result == "pass" and not _aligned(clause, domain):
            result = "unaligned"
        results[method].add(result)
    if "pass" in results["dmarc"]:
        return "pass"
    if results["dmarc"] & {"fail", "quarantine", "reject"}:
        return "fail"
    if "pass" in results["spf"] or "pass" in results["dkim"]:
        return "pass"
    if results["spf"] & {"fail", "softfail"} and "pass" not in results["dkim"]:
        return "fail"
    return "none"


def _server(header: str) -> str:
    words = header.split(";", 1)[0].split()
    return words[0].lower() if words else ""


def _aligned(clause: str, domain: str) -> bool:
    """SPF and DKIM vouch for the From address only when they speak for its domain."""
    identity = _IDENTITY.search(clause)
    return identity is not None and identity.group(1).lower().rsplit("@", 1)[-1] == domain
