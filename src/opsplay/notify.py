"""Post a run's summary to a webhook (JSON, or a Slack-compatible ``text`` payload).

A notification never changes the run's outcome: any failure is reported on stderr, with the
URL reduced to scheme and host so tokens in its path or query never reach a log.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opsplay.state import RunRecord

WHEN = ("failure", "always")
FORMATS = ("json", "slack")


def should_notify(record: RunRecord, when: str) -> bool:
    return when == "always" or record.exit_code != 0


def payload(record: RunRecord, fmt: str) -> dict[str, Any]:
    summary = record.to_json()
    summary.pop("artifacts", None)  # a control-node path: of no use to the receiver
    if fmt == "json":
        return summary
    totals = record.totals
    lines = [
        f"opsplay {record.what} on {record.env}: {record.status} (exit {record.exit_code}), "
        f"{len(record.hosts)} hosts, changed={totals['changed']} failed={totals['failed']} "
        f"unreachable={totals['unreachable']}"
    ]
    lines += [
        f"- {host}: {row['message']}" for host, row in record.hosts.items() if row.get("message")
    ]
    return {"text": "\n".join(lines), "opsplay": summary}


def redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}"


def send(
    url: str,
    record: RunRecord,
    fmt: str,
    timeout: float = 10.0,
    notice: Callable[[str], None] | None = None,
) -> bool:
    body = json.dumps(payload(record, fmt)).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        message = f"notification to {redact(url)} failed: {reason}"
        if notice is None:
            print(f"opsplay: {message}", file=sys.stderr)
        else:
            notice(message)
        return False
