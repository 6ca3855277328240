"""One reader of a PEM certificate file for every opsplay module (health, status, cert_renewal).

``read_certificate(path)`` returns what the roles decide on: notAfter, notBefore, serial,
subject, issuer and subjectAltNames of the FIRST certificate in the file (a fullchain's leaf).
``days_left(not_after, now)`` is the one rule for "days left": whole days, rounded DOWN, as the
runbook's ``(notAfter - now) / 86400``: 2 for a certificate expiring in 2 days 23 hours, -1 for
one that expired an hour ago. ``seconds_left`` is there for finer windows.

The host needs only python3's standard library and the ``openssl`` command (1.1.1 or newer, for
``-ext``): python3-cryptography is not guaranteed on a host (the lab image has it only as a
dependency of another package). Every failure is one ``CertificateError`` whose message is one
line naming the file and the reason: missing file, not a PEM certificate, openssl missing,
openssl refusing it.

Formats (the ones community.crypto's x509_certificate_info gave roles/cert_renewal):
``not_after``/``not_before`` ``YYYY-MM-DDTHH:MM:SSZ`` (UTC); ``serial`` upper-case hex without
leading zeros; ``subject``/``issuer`` ``CN=a, O=b`` in the certificate's order; ``sans`` like
``DNS:example.org``, ``IP:10.0.0.1``, ``email:a@b``, ``URI:...``.
"""

from __future__ import annotations

import calendar
import datetime
import glob
import math
import os
import subprocess
import time

from ansible_collections.opsplay.ops.plugins.module_utils import timestamps

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
OPENSSL_TIME = "%b %d %H:%M:%S %Y %Z"  # "Nov 24 07:00:00 2027 GMT"; openssl always prints GMT
ISO_FORMAT = timestamps.ISO  # opsplay's one ISO format (module_utils.timestamps)
# openssl's names for SAN types that differ from the short ones community.crypto returns
SAN_PREFIXES = {"IP Address": "IP", "Registered ID": "RID", "othername": "otherName"}


class CertificateError(Exception):
    """A certificate file cannot be read; str() is one line naming the file and the reason."""


def _utc(text: str) -> datetime.datetime:
    moment = calendar.timegm(time.strptime(text, OPENSSL_TIME))
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc)


def _san(entry: str) -> str:
    kind, sep, value = entry.partition(":")
    return SAN_PREFIXES.get(kind, kind) + sep + value if sep else entry


def parse_openssl_output(text: str) -> dict:
    """Fields of ``openssl x509 -noout -enddate -startdate -serial -subject -issuer -ext
    subjectAltName`` output; raises ValueError if a date or the serial is missing."""
    fields, sans, in_sans = {}, [], False
    for line in text.splitlines():
        if line.startswith("X509v3 Subject Alternative Name"):
            in_sans = True
        elif in_sans and line.startswith((" ", "\t")):
            sans.extend(_san(part.strip()) for part in line.split(",") if part.strip())
        else:
            in_sans = False
            key, sep, value = line.partition("=")
            if sep and key in ("notAfter", "notBefore", "serial", "subject", "issuer"):
                fields[key] = value.strip()
    if "notAfter" not in fields or "serial" not in fields:
        raise ValueError("no notAfter or serial in openssl's output")
    not_after = _utc(fields["notAfter"])
    not_before = _utc(fields["notBefore"]) if "notBefore" in fields else None
    return {
        "not_after": not_after.strftime(ISO_FORMAT),
        "not_before": not_before.strftime(ISO_FORMAT) if not_before else "",
        "serial": "%X" % int(fields["serial"], 16),
        "subject": fields.get("subject", ""),
        "issuer": fields.get("issuer", ""),
        "sans": sans,
    }


def _run_openssl(path: str) -> str:
    command = ["openssl", "x509", "-noout", "-enddate", "-startdate", "-serial", "-subject"]
    command += ["-issuer", "-nameopt", "sep_comma_plus_space,utf8", "-ext", "subjectAltName"]
    try:
        proc = subprocess.run(
            [*command, "-in", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except FileNotFoundError:
        raise CertificateError(
            "certificate %s: the openssl command is not installed on this host" % path
        ) from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "exit %d" % proc.returncode
        raise CertificateError("certificate %s: openssl cannot read it (%s)" % (path, reason))
    return proc.stdout


def read_certificate(path: str) -> dict:
    """``{"path", "not_after", "not_before", "serial", "subject", "issuer", "sans"}`` of the
    first certificate in the PEM file ``path``; CertificateError (one line) if unreadable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024 * 1024)
    except OSError as exc:
        raise CertificateError(
            "certificate %s: %s" % (path, exc.strerror or exc.__class__.__name__)
        ) from None
    if PEM_MARKER not in head:
        raise CertificateError("certificate %s: not a PEM certificate" % path)
    output = _run_openssl(path)
    try:
        fields = parse_openssl_output(output)
    except ValueError as exc:
        raise CertificateError("certificate %s: %s" % (path, exc)) from None
    return {"path": path, **fields}


def parse_time(text: str) -> datetime.datetime:
    """A ``not_after``/``not_before`` string back to an aware UTC datetime."""
    return timestamps.parse_iso(text)


def seconds_left(not_after: str, now: datetime.datetime) -> int:
    """Whole seconds from ``now`` (aware) to ``not_after``; negative once expired."""
    return math.floor((parse_time(not_after) - now).total_seconds())


def days_left(not_after: str, now: datetime.datetime) -> int:
    """Whole days left, rounded down (see the module's docstring); negative once expired."""
    return math.floor(seconds_left(not_after, now) / 86400)


def utc_now() -> datetime.datetime:
    return timestamps.now()


def read_or_error(path: str, now: datetime.datetime) -> dict:
    """``read_certificate(path)`` plus ``days_left`` and ``seconds_left`` at ``now``, or
    ``{"path", "error"}`` (the reason without the "certificate PATH: " prefix)."""
    try:
        cert = read_certificate(path)
    except CertificateError as exc:
        return {"path": path, "error": str(exc).split(": ", 1)[-1]}
    cert["days_left"] = days_left(cert["not_after"], now)
    cert["seconds_left"] = seconds_left(cert["not_after"], now)
    return cert


def expand_paths(patterns: list, live_dir: str | None = None) -> tuple:
    """(paths, problems): declared files and globs (a glob matching nothing is a problem
    ``cert PATTERN: no file matches``), then ``cert.pem`` of every certbot lineage under
    ``live_dir`` when it exists; each path once, in that order."""
    paths, problems = [], []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                problems.append("cert %s: no file matches" % pattern)
            paths.extend(matches)
        else:
            paths.append(pattern)
    if live_dir and os.path.isdir(live_dir):
        for name in sorted(os.listdir(live_dir)):
            if os.path.isdir(os.path.join(live_dir, name)):
                paths.append(os.path.join(live_dir, name, "cert.pem"))
    unique = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique, problems
