"""plugins/modules/health_probe.py: the health role's decisions, from measurements (no host)."""

from __future__ import annotations

import datetime
import http.server
import json
import subprocess
import threading

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import certificates
from ansible_collections.opsplay.ops.plugins.modules import health_probe as hp


def test_disk_findings_threshold_is_strictly_above():
    disks = [
        {"path": "/", "percent_used": 90},
        {"path": "/srv", "percent_used": 91},
        {"path": "/gone", "error": "No such file or directory"},
    ]
    problems, summary = hp.disk_findings(disks, 90)
    assert problems == ["disk /srv 91% > 90%", "disk /gone: No such file or directory"]
    assert summary == ["disk / 90%"]


def test_memory_findings():
    assert hp.memory_findings(91, 90) == (["memory 91% > 90%"], [])
    assert hp.memory_findings(90, 90) == ([], ["memory 90%"])


def test_postgres_findings_readiness_and_login():
    pg = {"host": "127.0.0.1", "port": 5432}
    assert hp.postgres_findings(pg, {"ready": True, "message": "accepting connections"}, None) == (
        [],
        ["postgresql 127.0.0.1:5432 ready"],
    )
    assert hp.postgres_findings(pg, {"ready": False, "message": "no response"}, None) == (
        ["postgresql 127.0.0.1:5432 not ready (no response)"],
        [],
    )
    where = "postgresql login postgres@127.0.0.1:5432/postgres"
    refused = {
        "where": where,
        "available": False,
        "error": 'connection failed:  FATAL:  password authentication failed\nfor user "x"\n',
    }
    assert hp.postgres_findings(None, None, refused) == (
        [where + " failed: connection failed: FATAL: password authentication failed"],
        [],
    )
    assert hp.postgres_findings(None, None, {"where": where, "available": False, "error": ""})[
        0
    ] == [where + " failed: not available"]
    assert hp.postgres_findings(None, None, {"where": where, "available": True}) == (
        [],
        [where + " ok"],
    )


SHOW = "LoadState=loaded\nActiveState=active\nSubState=running\n\n" + (
    "LoadState=loaded\nActiveState=inactive\nSubState=dead\n\n"
    "LoadState=not-found\nActiveState=inactive\nSubState=dead\n"
)


def test_services_from_systemctl_show():
    units = ["nginx.service", "cron.service", "nope.service"]
    states = hp.parse_systemctl_show(units, 0, SHOW, "")
    assert states[1] == {
        "unit": "cron.service",
        "load": "loaded",
        "active": "inactive",
        "sub": "dead",
    }
    problems, summary = hp.service_findings(states)
    assert problems == [
        "service cron.service inactive (dead)",
        "service nope.service missing (not-found)",
    ]
    assert summary == ["services nginx.service active"]


def test_systemctl_failure_is_one_problem_for_all_units():
    states = hp.parse_systemctl_show(
        ["a.service", "b.service"], 1, "", "Failed to connect to bus\n"
    )
    assert hp.service_findings(states) == (
        ["services a.service, b.service: Failed to connect to bus"],
        [],
    )


def test_http_findings_name_maintenance_on_503():
    window = "in maintenance mode since 2026-11-30T02:00:41Z (run R, weekly maintenance)"
    results = [
        ("http://a/", 200, 200, None),
        ("http://b/", 200, 404, None),
        ("http://c/", 200, 503, None),
        ("http://d/", 200, None, "[Errno 111] Connection refused"),
    ]
    problems, summary = hp.http_findings(results, window)
    assert summary == ["http http://a/ ok"]
    assert problems == [
        "http http://b/ returned 404, expected 200",
        "http http://c/ returned 503: " + window,
        "http http://d/ failed: [Errno 111] Connection refused",
    ]
    assert hp.http_findings([("http://c/", 200, 503, None)], None)[0] == [
        "http http://c/ returned 503, expected 200"
    ]


def cert(path, not_after, now):
    return {
        "path": path,
        "not_after": not_after,
        "days_left": certificates.days_left(not_after, now),
        "seconds_left": certificates.seconds_left(not_after, now),
    }


NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("not_after", "problems", "warnings"),
    [
        ("2027-06-01T00:00:00Z", [], []),
        # 29 days 23 hours: 29 whole days, under 30 -> warning
        ("2026-12-30T11:00:00Z", [], ["cert /c.pem expires in 29 days (2026-12-30, < 30)"]),
        ("2026-12-30T12:00:00Z", [], []),  # exactly 30 days: not under 30
        # exactly 7 days: not under 7, under 30
        ("2026-12-07T12:00:00Z", [], ["cert /c.pem expires in 7 days (2026-12-07, < 30)"]),
        ("2026-12-07T11:59:59Z", ["cert /c.pem expires in 6 days (2026-12-07, < 7)"], []),
        ("2026-12-02T11:00:00Z", ["cert /c.pem expires in 1 days (2026-12-02, < 7)"], []),
        ("2026-11-30T11:00:00Z", ["cert /c.pem expired 0 days ago (2026-11-30)"], []),
        ("2026-11-27T12:00:00Z", ["cert /c.pem expired 3 days ago (2026-11-27)"], []),
    ],
)
def test_certificate_windows(not_after, problems, warnings):
    found = hp.certificate_findings([cert("/c.pem", not_after, NOW)], 30, 7)
    assert (found[0], found[1]) == (problems, warnings)


def test_certificate_summary_names_the_soonest_and_unreadable_ones_fail():
    certs = [
        cert("/a.pem", "2027-06-01T00:00:00Z", NOW),
        cert("/b.pem", "2027-01-15T00:00:00Z", NOW),
        {"path": "/x.key", "error": "not a PEM certificate"},
    ]
    problems, warnings, summary = hp.certificate_findings(certs, 30, 7)
    assert problems == ["cert /x.key: unreadable (not a PEM certificate)"]
    assert warnings == []
    assert summary == ["certs 2 checked, soonest /b.pem in 45 days"]


def test_certificates_read_on_disk_become_findings(tmp_path):
    soon = tmp_path / "soon.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-nodes"),
            *("-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-subj", "/CN=soon", "-days", "3", "-keyout", str(tmp_path / "k"), "-out", str(soon)),
        ],
        check=True,
        capture_output=True,
    )
    paths, unmatched = certificates.expand_paths([str(tmp_path / "*.pem"), "/none/*.pem"])
    assert paths == [str(soon)] and unmatched == ["cert /none/*.pem: no file matches"]
    now = certificates.utc_now()
    problems, _, _ = hp.certificate_findings(
        [certificates.read_or_error(p, now) for p in paths], 30, 7
    )
    assert len(problems) == 1 and problems[0].startswith(f"cert {soon} expires in 2 days (")


def test_report_healthy_records_the_summary_with_warnings_last():
    result = hp.report("web1", [], ["cert /a expires in 19 days"], ["disk / 20%", "memory 5%"])
    assert result["msg"] == "healthy: disk / 20%; memory 5%; WARNING cert /a expires in 19 days"
    assert result["healthy"] is True
    assert result["ansible_stats"] == {
        "data": {
            "health": {
                "web1": {
                    "healthy": True,
                    "summary": result["msg"],
                    "problems": [],
                    "warnings": ["cert /a expires in 19 days"],
                }
            }
        },
        "per_host": False,
        "aggregate": True,
    }


def test_report_unhealthy_lists_every_problem():
    result = hp.report("web1", ["disk / 95% > 90%", "memory 99% > 90%"], [], ["certs 1 checked"])
    assert result["msg"] == "disk / 95% > 90%; memory 99% > 90%"
    assert result["healthy"] is False


def test_maintenance_message(tmp_path):
    flag = tmp_path / "maintenance.flag"
    assert hp.maintenance(str(flag)) is None
    flag.write_text(json.dumps({"time": "2026-11-30T02:00:41Z", "run_id": "R", "reason": "weekly"}))
    assert (
        hp.maintenance(str(flag))
        == "in maintenance mode since 2026-11-30T02:00:41Z (run R, weekly)"
    )
    flag.write_text("{not json")
    assert hp.maintenance(str(flag)) == f"in maintenance mode (flag {flag} unreadable)"


def test_postgres_login_logs_in_as_the_role_over_tcp_and_reports_the_reason():
    pg = {"host": "127.0.0.1", "port": "5432"}
    login = {"user": "app", "password": "s3cret", "database": "appdb"}
    seen = []

    class Session:
        def close(self):
            seen.append("closed")

    def accept(**kwargs):
        seen.append(kwargs)
        return Session()

    where = "postgresql login app@127.0.0.1:5432/appdb"
    assert hp.postgres_login(pg, login, accept) == {"where": where, "available": True, "error": ""}
    assert seen[0]["host"] == "127.0.0.1" and seen[0]["port"] == 5432
    assert (seen[0]["user"], seen[0]["password"], seen[0]["dbname"]) == ("app", "s3cret", "appdb")
    assert seen[1] == "closed"

    def refuse(**kwargs):
        raise RuntimeError('FATAL:  password authentication failed for user "app"\nmore')

    result = hp.postgres_login(pg, login, refuse)
    assert result["available"] is False
    problems, _ = hp.postgres_findings(None, None, result)
    assert problems == [where + ' failed: FATAL: password authentication failed for user "app"']
    assert "s3cret" not in problems[0]


def test_critical_above_warning_is_a_problem_and_skips_certificates(monkeypatch):
    monkeypatch.setattr(hp, "memory_percent", lambda: 10)
    args = {
        "disk_paths": [],
        "disk_max_percent": 90,
        "memory_max_percent": 90,
        "postgres": None,
        "postgres_login": None,
        "services": [],
        "maintenance_flag": None,
        "http_checks": [],
        "http_timeout": 1,
        "certificates": ["/none/*.pem"],
        "certbot_live_dir": None,
        "cert_warning_days": 7,
        "cert_critical_days": 40,
    }
    problems, _warnings, summary, found = hp.measure_and_decide(args)
    assert problems == ["health_cert_critical_days (40) is above health_cert_warning_days (7)"]
    assert summary == ["memory 10%"] and found["certificates"] == []


def test_missing_commands_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither pg_isready nor systemctl there
    assert hp.postgres_state("127.0.0.1", 5432) == {
        "ready": False,
        "message": "pg_isready not found",
    }
    assert hp.systemd_units(["a.service"]) == [
        {"unit": "a.service", "error": "systemctl not found"}
    ]
    assert hp.systemd_units([]) == []


def test_memory_percent_reads_proc_meminfo():
    assert 0 <= hp.memory_percent() <= 100


def test_http_status_of_a_real_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        check = {"url": base + "/", "validate_certs": True}
        assert hp.http_status(check, 5) == (200, None)
        assert hp.http_status(dict(check, url=base + "/nope"), 5) == (404, None)
    finally:
        server.shutdown()
        server.server_close()
    status, error = hp.http_status({"url": base + "/", "validate_certs": False}, 5)
    assert status is None and "refused" in error.lower()
