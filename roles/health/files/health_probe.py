#!/usr/bin/env python3
# Managed by the opsplay `health` role: read-only probe of disk, memory, PostgreSQL,
# systemd units, HTTP endpoints and certificate expiry.
#
# Usage: health_probe.py JSON, JSON = {"disk_paths": [...], "disk_max_percent": N,
#   "memory_max_percent": N, "postgres": {"host": H, "port": P} or null,
#   "services": [unit, ...], "certificates": [path or glob, ...],
#   "certbot_live_dir": path or null, "cert_warning_days": N, "cert_critical_days": N,
#   "http_checks": [{"url": U, "status": N, "validate_certs": bool}], "http_timeout": S,
#   "maintenance_flag": path or null}
# Prints one JSON document: {"problems": [str], "warnings": [str], "summary": [str],
#   "disk": [...], "memory_percent": N, "postgres": {"ready": bool, "message": str} or null,
#   "services": [{"unit", "load", "active", "sub"}],
#   "certificates": [{"path", "not_after", "days_left"}], "maintenance": str or null}
# Python 3 standard library and the openssl command (certificates' notAfter); no
# python3-cryptography needed on the host.
"""Measure what the health role checks, in one remote call."""

import datetime
import glob
import json
import math
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request


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
            ["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", *units],
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
        error = (
            proc.stderr.strip().splitlines() or ["systemctl show exited %d" % proc.returncode]
        )[0]
        return [{"unit": unit, "error": error} for unit in units]
    states = []
    for unit, block in zip(units, blocks):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        states.append(
            {
                "unit": unit,
                "load": props.get("LoadState", ""),
                "active": props.get("ActiveState", ""),
                "sub": props.get("SubState", ""),
            }
        )
    return states


def cert_not_after(path):
    """notAfter of the first certificate of a PEM file, as `openssl x509` reads it."""
    with open(path, "rb") as handle:  # missing or unreadable: the OSError names it
        if b"-----BEGIN CERTIFICATE-----" not in handle.read(1024 * 1024):
            raise ValueError("no PEM certificate")
    try:
        proc = subprocess.run(
            ["openssl", "x509", "-noout", "-enddate", "-in", path],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise ValueError("the openssl command is not installed") from None
    if proc.returncode != 0 or not proc.stdout.startswith("notAfter="):
        lines = proc.stderr.strip().splitlines()
        raise ValueError("openssl cannot read it: " + (lines[-1] if lines else "no output"))
    # e.g. "notAfter=Nov 24 07:00:00 2027 GMT"; openssl always prints GMT
    moment = time.strptime(proc.stdout.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return datetime.datetime(*moment[:6], tzinfo=datetime.timezone.utc)


def certificate(path, now):
    try:
        not_after = cert_not_after(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {"path": path, "error": reason}
    seconds_left = (not_after - now).total_seconds()
    # Whole days, as the runbook's ((notAfter - now) / 86400): 2 for a certificate expiring in
    # 2 days 23 hours, -1 for one that expired an hour ago.
    result = {
        "path": path,
        "not_after": not_after.strftime("%Y-%m-%d %H:%M:%SZ"),
        "days_left": math.floor(seconds_left / 86400),
    }
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
    paths, found_problems = certificate_paths(
        args.get("certificates") or [], args.get("certbot_live_dir")
    )
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
            problems.append(
                "cert %s expires in %d days (%s, < %d)" % (path, days, date, critical_days)
            )
        elif days < warning_days:
            warnings.append(
                "cert %s expires in %d days (%s, < %d)" % (path, days, date, warning_days)
            )
    if valid:
        soonest = min(valid, key=lambda cert: cert["days_left"])
        summary.append(
            "certs %d checked, soonest %s in %d days"
            % (len(valid), soonest["path"], soonest["days_left"])
        )
    return certs


def check_services(units, problems, summary):
    states = systemd_units(units)
    active = []
    errors = [state for state in states if "error" in state]
    if errors:  # systemctl itself failed: one problem for all units
        problems.append(
            "services %s: %s" % (", ".join(state["unit"] for state in errors), errors[0]["error"])
        )
    for state in states:
        if "error" in state:
            continue
        if state["load"] == "not-found":
            problems.append("service %s missing (not-found)" % state["unit"])
        elif state["active"] in ("active", "reloading"):
            active.append(state["unit"])
        else:
            problems.append(
                "service %s %s (%s)"
                % (state["unit"], state["active"] or "unknown", state["sub"] or state["load"])
            )
    if active:
        summary.append("services %s active" % ", ".join(active))
    return states


def maintenance(path):
    """'in maintenance mode since T (run ID, REASON)' when the maintenance_mode role's flag
    exists (it holds the window's start entry), else None."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            window = json.load(handle)
    except (OSError, ValueError):
        window = None
    if not isinstance(window, dict):
        return "in maintenance mode (flag %s unreadable)" % path
    return "in maintenance mode since %s (run %s, %s)" % (
        window.get("time", "an unknown time"),
        window.get("run_id") or "unknown",
        window.get("reason") or "no reason given",
    )


def check_http(checks, timeout, problems, summary, window=None):
    """GET each URL from the host (redirects followed, like ansible.builtin.uri) and compare
    the final status with the expected one. A 503 while maintenance mode is on says so."""
    for check in checks:
        url, expected = check["url"], check["status"]
        context = None
        if url.lower().startswith("https:") and not check["validate_certs"]:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problems.append("http %s failed: %s" % (url, getattr(exc, "reason", None) or exc))
            continue
        if status != expected:
            problem = "http %s returned %d, expected %d" % (url, status, expected)
            if status == 503 and window:
                problem = "http %s returned 503: %s" % (url, window)
            problems.append(problem)
        else:
            summary.append("http %s ok" % url)


def main():
    args = json.loads(sys.argv[1])
    problems, warnings, summary = [], [], []

    disks = [disk(path) for path in args["disk_paths"]]
    for entry in disks:
        if "error" in entry:
            problems.append("disk %s: %s" % (entry["path"], entry["error"]))
        elif entry["percent"] > args["disk_max_percent"]:
            problems.append(
                "disk %s %d%% > %d%%" % (entry["path"], entry["percent"], args["disk_max_percent"])
            )
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
    window = maintenance(args.get("maintenance_flag"))
    if window:
        warnings.append(window)
    check_http(args["http_checks"], args["http_timeout"], problems, summary, window)

    if args["cert_critical_days"] > args["cert_warning_days"]:
        problems.append(
            "health_cert_critical_days (%d) is above health_cert_warning_days (%d)"
            % (args["cert_critical_days"], args["cert_warning_days"])
        )
        certs = []
    else:
        certs = check_certificates(args, problems, warnings, summary)

    result = {
        "problems": problems,
        "warnings": warnings,
        "summary": summary,
        "disk": disks,
        "memory_percent": memory,
        "postgres": pg_state,
        "services": services,
        "certificates": certs,
        "maintenance": window,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
