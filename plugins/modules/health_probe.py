#!/usr/bin/python3
"""Ansible module: the health role's checks and verdict, in one remote call.

Read-only (check mode too): disk (module_utils.disk_usage), memory, pg_isready, systemd units,
HTTP fetched on the host, certificates (module_utils.certificates), maintenance flag. Every
crossed threshold or failed check is a problem, a certificate in the warning window a warning.
With problems the module fails listing them all (``; ``); healthy, ``msg`` is ``healthy:
SUMMARY`` and the report goes to the run summary (``ansible_stats``: data.health.HOST).
``*_findings`` and ``report`` decide, without a host: tests/unit/test_health_probe.py.
"""

from __future__ import annotations

import math
import ssl
import subprocess
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import (
    certificates,
    disk_usage,
    maintenance_flag,
)


def memory_percent():
    info = {}
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0])
    total, available = info["MemTotal"], info["MemAvailable"]
    return disk_usage.percent_used(total - available, available)


def postgres_state(host, port):
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


def postgres_login(postgres, login, connect=None):
    """The login check ({where, available, error}): log in for real as ``login["user"]`` with
    its password over TCP to the checked server (what community.postgresql.postgresql_ping did
    in a task of its own), then close the session."""
    where = "postgresql login %s@%s:%s/%s" % (
        login["user"],
        postgres["host"],
        postgres["port"],
        login["database"],
    )
    if connect is None:
        try:
            import psycopg2
        except ImportError:
            return {"where": where, "available": False, "error": "python3-psycopg2 is missing"}
        connect = psycopg2.connect
    try:
        session = connect(
            host=postgres["host"],
            port=int(postgres["port"]),
            user=login["user"],
            password=login["password"],
            dbname=login["database"],
            connect_timeout=10,
            application_name="opsplay health",
        )
    except Exception as exc:  # psycopg2.Error and its OperationalError: the reason, reported
        return {"where": where, "available": False, "error": str(exc)}
    session.close()
    return {"where": where, "available": True, "error": ""}


def parse_systemctl_show(units, returncode, stdout, stderr):
    """LoadState/ActiveState/SubState per unit from ``systemctl show``'s blocks."""
    blocks = stdout.strip().split("\n\n") if stdout.strip() else []
    if returncode != 0 or len(blocks) != len(units):
        error = (stderr.strip().splitlines() or ["systemctl show exited %d" % returncode])[0]
        return [{"unit": unit, "error": error} for unit in units]
    states = []
    for unit, block in zip(units, blocks):
        props = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        keys = (("load", "LoadState"), ("active", "ActiveState"), ("sub", "SubState"))
        states.append(dict({"unit": unit}, **{key: props.get(name, "") for key, name in keys}))
    return states


def systemd_units(units):
    if not units:
        return []
    command = ["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", *units]
    try:
        proc = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
    except FileNotFoundError:
        return [{"unit": unit, "error": "systemctl not found"} for unit in units]
    return parse_systemctl_show(units, proc.returncode, proc.stdout, proc.stderr)


def maintenance(path):
    """'in maintenance mode since T (run ID, REASON)' while the maintenance_mode role's flag
    exists (it holds the window's start entry), else None."""
    exists, window = maintenance_flag.read(path)
    return maintenance_message(path, window) if exists else None


def maintenance_message(path, window):
    if not isinstance(window, dict):
        return "in maintenance mode (flag %s unreadable)" % path
    return "in maintenance mode since %s (run %s, %s)" % (
        window.get("time", "an unknown time"),
        window.get("run_id") or "unknown",
        window.get("reason") or "no reason given",
    )


def http_status(check, timeout):
    """(status, None) of a GET of check["url"] (redirects followed), or (None, reason)."""
    url, context = check["url"], None
    if url.lower().startswith("https:") and not check["validate_certs"]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", None) or exc)


# --- decisions: measurements in, (problems, warnings, summary) lines out -----------------


def disk_findings(disks, max_percent):
    problems, summary = [], []
    for entry in disks:
        if "error" in entry:
            problems.append("disk %s: %s" % (entry["path"], entry["error"]))
        elif entry["percent_used"] > max_percent:
            problems.append(
                "disk %s %d%% > %d%%" % (entry["path"], entry["percent_used"], max_percent)
            )
        else:
            summary.append("disk %s %d%%" % (entry["path"], entry["percent_used"]))
    return problems, summary


def memory_findings(percent, max_percent):
    if percent > max_percent:
        return ["memory %d%% > %d%%" % (percent, max_percent)], []
    return [], ["memory %d%%" % percent]


def postgres_findings(postgres, state, login):
    problems, summary = [], []
    if postgres and state:
        where = "postgresql %s:%s" % (postgres["host"], postgres["port"])
        if state["ready"]:
            summary.append("%s ready" % where)
        else:
            problems.append("%s not ready (%s)" % (where, state["message"]))
    if login:
        if login.get("available"):
            summary.append("%s ok" % login["where"])
        else:
            lines = (login.get("error") or "").strip().splitlines()
            reason = " ".join(lines[0].split()) if lines else "not available"
            problems.append("%s failed: %s" % (login["where"], reason))
    return problems, summary


def service_findings(states):
    problems, active = [], []
    errors = [state for state in states if "error" in state]
    if errors:  # systemctl itself failed: one problem for all units
        units = ", ".join(state["unit"] for state in errors)
        problems.append("services %s: %s" % (units, errors[0]["error"]))
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
    return problems, ["services %s active" % ", ".join(active)] if active else []


def http_findings(results, window):
    """results: [(url, expected, status or None, error)]; a 503 in maintenance mode says so."""
    problems, summary = [], []
    for url, expected, status, error in results:
        if status is None:
            problems.append("http %s failed: %s" % (url, error))
        elif status == expected:
            summary.append("http %s ok" % url)
        elif status == 503 and window:
            problems.append("http %s returned 503: %s" % (url, window))
        else:
            problems.append("http %s returned %d, expected %d" % (url, status, expected))
    return problems, summary


def certificate_findings(certs, warning_days, critical_days):
    """Expired or under critical_days (or unreadable): a problem; under warning_days: a
    warning. Days are whole days left, rounded down."""
    problems, warnings, valid = [], [], []
    for cert in certs:
        path = cert["path"]
        if "error" in cert:
            problems.append("cert %s: unreadable (%s)" % (path, cert["error"]))
            continue
        valid.append(cert)
        days, date = cert["days_left"], cert["not_after"][:10]
        if days < 0:
            ago = math.floor(-cert["seconds_left"] / 86400)
            problems.append("cert %s expired %d days ago (%s)" % (path, ago, date))
        elif days < critical_days:
            problems.append(
                "cert %s expires in %d days (%s, < %d)" % (path, days, date, critical_days)
            )
        elif days < warning_days:
            warnings.append(
                "cert %s expires in %d days (%s, < %d)" % (path, days, date, warning_days)
            )
    summary = []
    if valid:
        soonest = min(valid, key=lambda cert: cert["days_left"])
        summary.append(
            "certs %d checked, soonest %s in %d days"
            % (len(valid), soonest["path"], soonest["days_left"])
        )
    return problems, warnings, summary


def report(host, problems, warnings, summary):
    """The module's verdict: msg, healthy, and the run summary's record (data.health.HOST)."""
    healthy = not problems
    shown = summary + ["WARNING " + warning for warning in warnings]
    msg = "healthy: " + "; ".join(shown) if healthy else "; ".join(problems)
    record = {
        "healthy": healthy,
        "summary": msg if healthy else "",
        "problems": problems,
        "warnings": warnings,
    }
    return {
        "msg": msg,
        "healthy": healthy,
        "problems": problems,
        "warnings_found": warnings,
        "summary": shown,
        "ansible_stats": {"data": {"health": {host: record}}, "per_host": False, "aggregate": True},
    }


def measure_and_decide(args):
    """Every check in the documented order: problems, warnings, summary, measurements."""
    problems, warnings, summary, found = [], [], [], {}

    def add(lines):
        problems.extend(lines[0])
        summary.extend(lines[-1])

    found["disk"] = [disk_usage.usage_or_error(path) for path in args["disk_paths"]]
    add(disk_findings(found["disk"], args["disk_max_percent"]))
    found["memory_percent"] = memory_percent()
    add(memory_findings(found["memory_percent"], args["memory_max_percent"]))
    pg = args["postgres"]
    found["postgres"] = postgres_state(pg["host"], pg["port"]) if pg else None
    add(postgres_findings(pg, found["postgres"], None))
    found["services"] = systemd_units(args["services"])
    add(service_findings(found["services"]))
    window = found["maintenance"] = maintenance(args["maintenance_flag"])
    if window:
        warnings.append(window)
    results = [
        (check["url"], check["status"], *http_status(check, args["http_timeout"]))
        for check in args["http_checks"]
    ]
    add(http_findings(results, window))
    found["certificates"] = []
    warning_days, critical_days = args["cert_warning_days"], args["cert_critical_days"]
    if critical_days > warning_days:
        problems.append(
            "health_cert_critical_days (%d) is above health_cert_warning_days (%d)"
            % (critical_days, warning_days)
        )
    else:
        paths, unmatched = certificates.expand_paths(args["certificates"], args["certbot_live_dir"])
        problems.extend(unmatched)
        now = certificates.utc_now()
        found["certificates"] = [certificates.read_or_error(path, now) for path in paths]
        cert_problems, cert_warnings, cert_summary = certificate_findings(
            found["certificates"], warning_days, critical_days
        )
        problems.extend(cert_problems)
        warnings.extend(cert_warnings)
        summary.extend(cert_summary)
    # the login check comes last, as it always has
    login = args["postgres_login"]
    login = found["postgres_login"] = postgres_login(pg, login) if pg and login else None
    add(postgres_findings(None, None, login))
    return problems, warnings, summary, found


def main():
    http_check = {
        "url": {"type": "str", "required": True},
        "status": {"type": "int", "default": 200},
        "validate_certs": {"type": "bool", "default": True},
    }
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "disk_paths": {"type": "list", "elements": "str", "default": ["/"]},
            "disk_max_percent": {"type": "int", "default": 90},
            "memory_max_percent": {"type": "int", "default": 90},
            "postgres": {"type": "dict"},
            "postgres_login": {
                "type": "dict",
                "options": {
                    "user": {"type": "str", "default": "postgres"},
                    "password": {"type": "str", "required": True, "no_log": True},
                    "database": {"type": "str", "default": "postgres"},
                },
            },
            "services": {"type": "list", "elements": "str", "default": []},
            "certificates": {"type": "list", "elements": "str", "default": []},
            "certbot_live_dir": {"type": "str"},
            "cert_warning_days": {"type": "int", "default": 30},
            "cert_critical_days": {"type": "int", "default": 7},
            "http_checks": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": http_check,
            },
            "http_timeout": {"type": "int", "default": 10},
            "maintenance_flag": {"type": "str"},
        },
        supports_check_mode=True,
    )
    problems, warnings, summary, found = measure_and_decide(module.params)
    result = report(module.params["host"], problems, warnings, summary)
    result.update(found)
    if problems:
        del result["ansible_stats"]  # recorded by a successful result only
        module.fail_json(**result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
