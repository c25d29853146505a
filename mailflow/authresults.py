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


def sender_authentication(mail: ParsedMail, authserv_id: str) -> Verdict:
    """pass: DMARC passed (or, without DMARC, SPF or DKIM passed); fail: DMARC failed (or SPF
    and DKIM both failed); none: no trusted verdict (or the check is off)."""
    if not authserv_id:
        return "none"
    results: dict[str, set[str]] = {"dmarc": set(), "spf": set(), "dkim": set()}
    for header in mail.header_values("Authentication-Results"):
        server = header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""
        if server != authserv_id.lower():
            continue
        for method, result in _RESULT.findall(header):
            results[method.lower()].add(result.lower())
    if "pass" in results["dmarc"]:
        return "pass"
    if results["dmarc"] & {"fail", "quarantine", "reject"}:
        return "fail"
    if "pass" in results["spf"] or "pass" in results["dkim"]:
        return "pass"
    if results["spf"] & {"fail", "softfail"} and not results["dkim"] - {"fail", "none", "neutral"}:
        return "fail"
    return "none"
