"""plugins/modules/health_probe.py as the health role calls it (main() in this process), on this
machine's real disk and memory, real certificates (openssl) in declared files and a certbot
live directory, a real HTTP server on 127.0.0.1 and a real maintenance flag: the verdict, the
run summary's record (only when healthy), every problem named. No PostgreSQL nor systemd here:
those checks are off (molecule/health proves them on the lab hosts)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from ansible_collections.opsplay.ops.plugins.modules import health_probe

from .module_harness import run_main
from .test_cert_renewal_module import make_cert


@pytest.fixture
def site():
    """http://127.0.0.1:PORT/ answers 200, /down 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503 if self.path == "/down" else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def args(tmp_path, **kw):
    base = {
        "host": "web1",
        "disk_paths": [str(tmp_path)],
        "disk_max_percent": 100,
        "memory_max_percent": 100,
    }
    return dict(base, **kw)


def test_a_healthy_host_is_recorded_for_the_run_summary(tmp_path, site):
    live = tmp_path / "live"
    make_cert(live / "www.test", "cert", days=80, san="DNS:www.test")
    (live / "README").write_text("certbot's note, not a lineage\n")
    make_cert(tmp_path / "certs", "soon", days=20, san="DNS:soon.test")
    checks = [{"url": site + "/"}]
    rc, result = run_main(
        health_probe,
        args(
            tmp_path,
            # the lineage's cert.pem declared too: read once
            certificates=[str(tmp_path / "certs" / "*.pem"), str(live / "www.test" / "cert.pem")],
            certbot_live_dir=str(live),
            http_checks=checks,
        ),
    )
    assert rc == 0, result
    assert result["healthy"] is True and result["changed"] is False
    soon = tmp_path / "certs" / "soon.pem"
    assert [c["path"] for c in result["certificates"]] == [
        str(soon),
        str(live / "www.test" / "cert.pem"),
    ]
    assert result["warnings_found"] == [
        f"cert {soon} expires in 19 days ({result['certificates'][0]['not_after'][:10]}, < 30)"
    ]
    assert f"http {site}/ ok" in result["summary"]
    assert f"certs 2 checked, soonest {soon} in 19 days" in result["summary"]
    assert result["msg"].startswith("healthy: disk ")
    assert result["msg"].endswith("; WARNING " + result["warnings_found"][0])
    record = result["ansible_stats"]["data"]["health"]["web1"]
    assert record == {
        "healthy": True,
        "summary": result["msg"],
        "problems": [],
        "warnings": result["warnings_found"],
    }


def test_an_unhealthy_host_fails_naming_every_problem_and_records_nothing(tmp_path, site):
    live = tmp_path / "live"
    (live / "empty.test").mkdir(parents=True)  # a lineage without its cert.pem
    make_cert(tmp_path / "certs", "critical", days=3, san="DNS:c.test")
    flag = tmp_path / "maintenance.flag"
    window = {"time": "2026-11-30T03:00:00Z", "run_id": "r7", "reason": "weekly maintenance"}
    flag.write_text(json.dumps(window))
    rc, result = run_main(
        health_probe,
        args(
            tmp_path,
            disk_paths=[str(tmp_path), str(tmp_path / "gone")],
            certificates=[
                str(tmp_path / "certs" / "*.pem"),
                str(tmp_path / "none" / "*.pem"),
                str(live),  # a directory declared as a certificate file
            ],
            certbot_live_dir=str(live),
            http_checks=[{"url": site + "/down"}, {"url": site + "/", "status": 204}],
            maintenance_flag=str(flag),
        ),
    )
    assert rc == 1
    assert "ansible_stats" not in result and result["healthy"] is False
    critical = tmp_path / "certs" / "critical.pem"
    date = result["certificates"][0]["not_after"][:10]
    in_maintenance = "in maintenance mode since 2026-11-30T03:00:00Z (run r7, weekly maintenance)"
    assert result["problems"] == [
        f"disk {tmp_path / 'gone'}: No such file or directory",
        f"http {site}/down returned 503: {in_maintenance}",
        f"http {site}/ returned 200, expected 204",
        f"cert {tmp_path / 'none' / '*.pem'}: no file matches",
        f"cert {critical} expires in 2 days ({date}, < 7)",
        f"cert {live}: unreadable (Is a directory)",
        f"cert {live / 'empty.test' / 'cert.pem'}: unreadable (No such file or directory)",
    ]
    assert result["msg"] == "; ".join(result["problems"])
    assert result["maintenance"] == in_maintenance


def test_critical_days_above_warning_days_is_a_problem_and_reads_no_certificate(tmp_path):
    make_cert(tmp_path / "certs", "critical", days=3, san="DNS:c.test")
    rc, result = run_main(
        health_probe,
        args(
            tmp_path,
            certificates=[str(tmp_path / "certs" / "*.pem")],
            cert_warning_days=5,
            cert_critical_days=10,
        ),
    )
    assert rc == 1
    assert result["problems"] == [
        "health_cert_critical_days (10) is above health_cert_warning_days (5)"
    ]
    assert result["certificates"] == []
