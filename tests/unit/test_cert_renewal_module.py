"""plugins/modules/cert_renewal_certificates.py run as Ansible runs it on a host (a python3
process given its arguments file), on real certificates made by openssl: certbot lineages in a
config directory, declared files, and an endpoint served by a TLS server in this test. No host
and no certbot: what certbot does is proven by molecule/cert_renewal against pebble."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugins" / "modules" / "cert_renewal_certificates.py"
HOOK = "#!/bin/sh\nexit 0\n"


def make_cert(directory: Path, name: str, *, days: int, san: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / (name + ".key"), directory / (name + ".pem")
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    command += ["-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=" + name]
    command += ["-addext", "subjectAltName=" + san, "-days", str(days)]
    subprocess.run(command, check=True, capture_output=True)
    return cert


def serial_of(path: Path) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-serial", "-in", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return f"{int(out.strip().split('=', 1)[1], 16):X}"


def run_module(tmp_path: Path, **args) -> tuple[int, dict, str]:
    """Run the module like Ansible's module runner does; (rc, result, stderr)."""
    args.setdefault("deploy_hook", str(tmp_path / "hook"))
    (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    proc = subprocess.run(
        [sys.executable, str(MODULE), str(tmp_path / "args.json")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture
def tls_endpoint(tmp_path):
    """A TLS server on 127.0.0.1 serving one certificate; yields (port, cert path)."""
    cert = make_cert(tmp_path / "served", "www.test", days=60, san="DNS:www.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], cert
    stop.set()
    thread.join()
    server.close()


def test_cert_check_reads_lineages_files_and_endpoints_and_names_every_problem(
    tmp_path, tls_endpoint
):
    port, served = tls_endpoint
    config = tmp_path / "letsencrypt"
    held = make_cert(config / "live" / "www.test", "cert", days=20, san="DNS:www.test")
    make_cert(tmp_path, "soon", days=3, san="DNS:soon.test")
    rc, result, err = run_module(
        tmp_path,
        config_dir=str(config),
        files=[str(tmp_path / "soon.pem"), str(tmp_path / "missing.pem")],
        endpoints=[
            {"host": "127.0.0.1", "port": port, "server_name": "www.test"},
            {"host": "127.0.0.1", "port": 1, "server_name": "down.test"},
        ],
        renew=False,
    )
    assert rc == 1 and result["failed"], err  # problems fail the host
    assert result["changed"] is False
    kinds = [(r["kind"], r["status"]) for r in result["records"]]
    assert kinds == [("lineage", "warning"), ("file", "critical"), ("file", "error"),
                     ("endpoint", "ok"), ("endpoint", "error")]  # fmt: skip
    lineage, _soon, _missing, endpoint, _down = result["records"]
    assert lineage["lineage"] == "www.test" and lineage["serial"] == serial_of(held)
    assert lineage["sans"] == ["DNS:www.test"] and lineage["subject"] == "CN=cert"
    assert 19.9 <= lineage["days_left"] < 20
    assert endpoint["serial"] == serial_of(served)
    problems = result["problems"]
    assert problems[0].startswith(f"CRITICAL file {tmp_path}/soon.pem expires in 2.9 days")
    assert problems[1].startswith(f"ERROR file {tmp_path}/missing.pem: certificate ")
    assert problems[2].startswith("ERROR endpoint 127.0.0.1:1 (SNI down.test): cannot read")
    # the endpoint of lineage www.test serves another certificate: an old serial
    assert problems[3] == (
        f"endpoint 127.0.0.1:{port} (SNI www.test) still serves serial {serial_of(served)} "
        f"(not after {endpoint['not_after']}) but lineage www.test holds serial "
        f"{serial_of(held)}: the new certificate is not served"
    )
    assert len(problems) == 4
    assert result["msg"].startswith("cert_renewal: 4 problem(s): CRITICAL file")
    assert "ansible_facts" not in result  # they would be written to the fact cache
    assert len(result["report"]) == 5 and result["report"][0].startswith("WARNING  lineage")
    assert not (tmp_path / "hook").exists()  # cert-check installs nothing


def test_check_mode_plans_without_acting(tmp_path, tls_endpoint):
    port, _served = tls_endpoint
    config = tmp_path / "letsencrypt"
    make_cert(config / "live" / "www.test", "cert", days=20, san="DNS:www.test")
    rc, result, err = run_module(
        tmp_path,
        config_dir=str(config),
        certificates=[{"name": "new.test", "domains": ["new.test"], "webroot": "/srv"}],
        # an endpoint of no lineage: read and reported, held to nothing
        endpoints=[{"host": "127.0.0.1", "port": port, "server_name": "other.test"}],
        renew=True,
        acme_directory="https://127.0.0.1:1/dir",
        deploy_hook_script=HOOK,
        _ansible_check_mode=True,
    )
    assert rc == 0, err
    assert result["changed"] is True
    assert [c["name"] for c in result["planned"]["issue"]] == ["new.test"]
    assert result["planned"]["renew"] == ["www.test"]  # 20 days left, inside 30
    assert result["done"] == {"issue": [], "reissue": [], "renew": [], "redeploy": []}
    assert result["msg"] == (
        "2 certificate(s) checked, 1 warning(s), none critical; "
        "would do (check mode): issued new.test, renewed www.test"
    )
    assert not (tmp_path / "hook").exists()
    assert sorted(os.listdir(config / "live")) == ["www.test"]


def test_bad_input_is_refused_in_one_line_before_anything_is_read(tmp_path):
    rc, result, err = run_module(
        tmp_path,
        config_dir="/nonexistent",
        critical_days=40,
        certificates=[{"name": "a", "domains": ["a"], "method": "dns"}],
        renew=True,
        acme_directory="",
        deploy_hook_script=HOOK,
    )
    assert rc == 1 and "Traceback" not in err
    assert result["failed"] is True and result["opsplay_bad_input"] is True
    assert result["msg"] == (
        "cert_renewal: bad input: cert_renewal_critical_days (40) is above "
        "cert_renewal_warning_days (30); cert_renewal_acme_directory is empty: set the ACME "
        "directory URL to issue certificates; cert_renewal_certificates a: method must be "
        "webroot or standalone, not dns"
    )
    assert "records" not in result and not (tmp_path / "hook").exists()


def test_an_endpoint_that_never_answers_the_handshake_is_an_error_after_its_timeout(tmp_path):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP (backlog), never speaks TLS
    try:
        rc, result, err = run_module(
            tmp_path,
            config_dir=str(tmp_path / "none"),
            endpoints=[{"host": "127.0.0.1", "port": silent.getsockname()[1]}],
            endpoint_timeout=0.5,
        )
    finally:
        silent.close()
    assert rc == 1 and result["failed"], err  # problems fail the host
    (record,) = result["records"]
    assert record["status"] == "error" and record["error"] == "no TLS answer within 0.5 s"
    assert result["problems"] == [f"ERROR endpoint {record['name']}: no TLS answer within 0.5 s"]


def test_the_hosts_report_goes_to_the_runs_data_with_its_summary_and_a_line_per_cert(tmp_path):
    """What the role's set_fact, debug and assert did: one module call passes or fails the host
    and hands its report to the run summary (ansible_stats data.cert_renewal.HOST)."""
    make_cert(tmp_path, "fine", days=90, san="DNS:fine.test")
    args = {"config_dir": str(tmp_path / "none"), "files": [str(tmp_path / "fine.pem")]}
    rc, result, err = run_module(tmp_path, host="web-1", **args)
    assert rc == 0, err
    report = result["ansible_stats"]["data"]["cert_renewal"]["web-1"]
    assert (
        report["summary"]
        == result["msg"]
        == ("1 certificate(s) checked, 0 warning(s), none critical")
    )
    assert report["certificates"] == result["report"] and report["problems"] == []
    assert report["certificates"][0].startswith(f"OK       file {tmp_path}/fine.pem: ")
    assert result["ansible_stats"]["aggregate"] and not result["ansible_stats"]["per_host"]
    make_cert(tmp_path, "fine", days=3, san="DNS:fine.test")
    rc, result, err = run_module(tmp_path, host="web-1", **args)
    assert rc == 1 and result["failed"], err
    assert result["msg"].startswith("cert_renewal: 1 problem(s): CRITICAL file ")
    assert "ansible_stats" not in result  # Ansible reads none from a failed task
    assert "ansible_stats" not in run_module(tmp_path, **args)[1]
