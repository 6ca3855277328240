#!/usr/bin/env python3
# Managed by the opsplay `health` role: read-only probe of disk, memory, PostgreSQL,
# systemd units and certificate expiry.
#
# Usage: health_probe.py JSON, JSON = {"disk_paths": [...], "disk_max_percent": N,
#   "memory_max_percent": N, "postgres": {"host": H, "port": P} or null,
#   "services": [unit, ...], "certificates": [path or glob, ...],
#   "certbot_live_dir": path or null, "cert_warning_days": N, "cert_critical_days": N}
# Prints one JSON document: {"problems": [str], "warnings": [str], "summary": [str],
#   "disk": [...], "memory_percent": N, "postgres": {"ready": bool, "message": str} or null,
#   "services": [{"unit", "load", "active", "sub"}], "certificates": [{"path", "not_after", "days_left"}]}
# Python 3 standard library only: certificates are parsed here (PEM -> DER -> notAfter),
# neither python3-cryptography nor the openssl CLI is needed on the host.
"""Measure what the health role checks, in one remote call."""

import base64
import binascii
import datetime
import glob
import json
import math
import os
import re
import subprocess
import sys
import time


def disk(path):
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return {"path": path, "error": exc.strerror or str(exc)}
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    # Same figure as df's Use%: used / (used + available to unprivileged users), rounded up.
    percent = math.ceil(100 * used / (used + avail)) if used + avail else 0
    return {"path": path, "percent": percent}


def memory_percent():
    info = {}
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0])
    total, available = info["MemTotal"], info["MemAvailable"]
    return math.ceil(100 * (total - available) / total) if total else 0


def postgres(host, port):
    try:
        proc = subprocess.run(
            ["pg_isready", "--host", str(host), "--port", str(port), "--timeout", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
            check=False,
        )
    except FileNotFoundError:
        return {"ready": False, "message": "pg_isready not found"}
    # pg_isready prints "HOST:PORT - accepting connections" / "- no response" / ...
    message = proc.stdout.strip().rpartition(" - ")[2] or "exit %d" % proc.returncode
    return {"ready": proc.returncode == 0, "message": message}


def systemd_units(units):
    """LoadState/ActiveState/SubState of every unit, in one systemctl call."""
    if not units:
        return []
    try:
        proc = subprocess.run(
            ["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--"] + list(units),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
    except FileNotFoundError:
        return [{"unit": unit, "error": "systemctl not found"} for unit in units]
    # One block of KEY=VALUE lines per unit, in the order given, separated by blank lines.
    blocks = proc.stdout.strip().split("\n\n") if proc.stdout.strip() else []
    if proc.returncode != 0 or len(blocks) != len(units):
        error = (proc.stderr.strip().splitlines() or ["systemctl show exited %d" % proc.returncode])[0]
        return [{"unit": unit, "error": error} for unit in units]
    states = []
    for unit, block in zip(units, blocks):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        states.append({"unit": unit, "load": props.get("LoadState", ""), "active": props.get("ActiveState", ""),
                       "sub": props.get("SubState", "")})
    return states


PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def _der_item(der, pos, end):
    """(tag, content start, content end) of the DER item at pos."""
    if pos + 2 > end:
        raise ValueError("truncated DER")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _asn1_time(tag, value):
    text = value.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; RFC 5280: YY >= 50 means 19YY
        if not re.fullmatch(r"\d{12}Z", text):
            raise ValueError("unsupported UTCTime %r" % text)
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        if not re.fullmatch(r"\d{14}Z", text):
            raise ValueError("unsupported GeneralizedTime %r" % text)
    else:
        raise ValueError("validity is not a time")
    return datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.timezone.utc)


def cert_not_after(path):
    """notAfter of the first certificate of a PEM file (X.509: Certificate > tbsCertificate > validity)."""
    with open(path, "rb") as handle:
        match = PEM_CERT.search(handle.read(1024 * 1024))
    if not match:
        raise ValueError("no PEM certificate")
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error:
        raise ValueError("bad base64 in PEM certificate") from None
    tag, start, end = _der_item(der, 0, len(der))  # Certificate
    if tag != 0x30:
        raise ValueError("not an X.509 certificate")
    tag, pos, end = _der_item(der, start, end)  # tbsCertificate
    if tag != 0x30:
        raise ValueError("not an X.509 certificate")
    fields = []
    while pos < end and len(fields) < 6:
        tag, start, stop = _der_item(der, pos, end)
        fields.append((tag, start, stop))
        pos = stop
    if fields and fields[0][0] == 0xA0:  # [0] version, absent in v1 certificates
        fields = fields[1:]
    # serialNumber, signature, issuer, validity
    if len(fields) < 4 or fields[3][0] != 0x30:
        raise ValueError("not an X.509 certificate")
    _, pos, end = fields[3]
    _, _, pos = _der_item(der, pos, end)  # notBefore
    tag, start, stop = _der_item(der, pos, end)  # notAfter
    return _asn1_time(tag, der[start:stop])


def certificate(path, now):
    try:
        not_after = cert_not_after(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {"path": path, "error": reason}
    seconds_left = (not_after - now).total_seconds()
    # Whole days, as the runbook's ((notAfter - now) / 86400): 2 for a certificate expiring in
    # 2 days 23 hours, -1 for one that expired an hour ago.
    result = {"path": path, "not_after": not_after.strftime("%Y-%m-%d %H:%M:%SZ"),
              "days_left": math.floor(seconds_left / 86400)}
    if seconds_left < 0:
        result["days_ago"] = math.floor(-seconds_left / 86400)
    return result


def certificate_paths(patterns, live_dir):
    """(paths, problems): declared files and globs, then every certbot lineage's cert.pem."""
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


def check_certificates(args, problems, warnings, summary):
    warning_days, critical_days = args["cert_warning_days"], args["cert_critical_days"]
    paths, found_problems = certificate_paths(args.get("certificates") or [], args.get("certbot_live_dir"))
    problems.extend(found_problems)
    now = datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc)
    certs = [certificate(path, now) for path in paths]
    valid = []
    for cert in certs:
        if "error" in cert:
            problems.append("cert %s: unreadable (%s)" % (cert["path"], cert["error"]))
            continue
        valid.append(cert)
        days, path, date = cert["days_left"], cert["path"], cert["not_after"][:10]
        if days < 0:
            problems.append("cert %s expired %d days ago (%s)" % (path, cert["days_ago"], date))
        elif days < critical_days:
            problems.append("cert %s expires in %d days (%s, < %d)" % (path, days, date, critical_days))
        elif days < warning_days:
            warnings.append("cert %s expires in %d days (%s, < %d)" % (path, days, date, warning_days))
    if valid:
        soonest = min(valid, key=lambda cert: cert["days_left"])
        summary.append("certs %d checked, soonest %s in %d days" % (len(valid), soonest["path"], soonest["days_left"]))
    return certs


def check_services(units, problems, summary):
    states = systemd_units(units)
    active = []
    errors = [state for state in states if "error" in state]
    if errors:  # systemctl itself failed: one problem for all units
        problems.append("services %s: %s" % (", ".join(state["unit"] for state in errors), errors[0]["error"]))
    for state in states:
        if "error" in state:
            continue
        if state["load"] == "not-found":
            problems.append("service %s missing (not-found)" % state["unit"])
        elif state["active"] in ("active", "reloading"):
            active.append(state["unit"])
        else:
            problems.append("service %s %s (%s)" % (state["unit"], state["active"] or "unknown", state["sub"] or state["load"]))
    if active:
        summary.append("services %s active" % ", ".join(active))
    return states


def main():
    args = json.loads(sys.argv[1])
    problems, warnings, summary = [], [], []

    disks = [disk(path) for path in args["disk_paths"]]
    for entry in disks:
        if "error" in entry:
            problems.append("disk %s: %s" % (entry["path"], entry["error"]))
        elif entry["percent"] > args["disk_max_percent"]:
            problems.append("disk %s %d%% > %d%%" % (entry["path"], entry["percent"], args["disk_max_percent"]))
        else:
            summary.append("disk %s %d%%" % (entry["path"], entry["percent"]))

    memory = memory_percent()
    if memory > args["memory_max_percent"]:
        problems.append("memory %d%% > %d%%" % (memory, args["memory_max_percent"]))
    else:
        summary.append("memory %d%%" % memory)

    pg = args.get("postgres")
    pg_state = postgres(pg["host"], pg["port"]) if pg else None
    if pg_state:
        where = "postgresql %s:%s" % (pg["host"], pg["port"])
        if pg_state["ready"]:
            summary.append("%s ready" % where)
        else:
            problems.append("%s not ready (%s)" % (where, pg_state["message"]))

    services = check_services(args.get("services") or [], problems, summary)

    if args["cert_critical_days"] > args["cert_warning_days"]:
        problems.append("health_cert_critical_days (%d) is above health_cert_warning_days (%d)"
                        % (args["cert_critical_days"], args["cert_warning_days"]))
        certs = []
    else:
        certs = check_certificates(args, problems, warnings, summary)

    result = {"problems": problems, "warnings": warnings, "summary": summary, "disk": disks,
              "memory_percent": memory, "postgres": pg_state, "services": services, "certificates": certs}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
