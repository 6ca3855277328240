"""plugins/modules/cert_renewal_certificates.py acting: issue, reissue, renew and redeploy, the
deploy hook, and the judgement by the certificates read again (main() in this process).

Certificates are real (openssl), the endpoint is a real TLS server on 127.0.0.1 that serves
whatever its certificate file holds at each handshake, the deploy hook is a real script. certbot
is a recorded fake on PATH: it logs its command line and, unless told to fail, writes a new
certificate for the lineage with openssl and runs the deploy hook, as certbot does. What the
real certbot does against an ACME server is proven by molecule/cert_renewal (pebble).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.modules import cert_renewal_certificates as crc

from .module_harness import run_main
from .test_cert_renewal_module import make_cert, serial_of

FAKE_CERTBOT = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CERTBOT_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "ca": os.environ.get("REQUESTS_CA_BUNDLE", "")}}) + "\\n")
if os.environ.get("FAKE_CERTBOT_FAIL"):
    sys.stderr.write(os.environ["FAKE_CERTBOT_FAIL"])
    sys.exit(1)
value = lambda flag: args[args.index(flag) + 1]
name, config = value("--cert-name"), value("--config-dir")
live = os.path.join(config, "live", name)
if "renew" in args:  # same names as the lineage holds
    sans = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           os.path.join(live, "cert.pem")], capture_output=True, text=True,
                          check=True).stdout.splitlines()[1].strip().replace(", ", ",")
else:
    sans = ",".join("DNS:" + a.split("=", 1)[1] for a in args if a.startswith("--domain="))
os.makedirs(live, exist_ok=True)
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", os.path.join(live, "privkey.pem"), "-out",
                os.path.join(live, "cert.pem"), "-subj", "/CN=" + name, "-addext",
                "subjectAltName=" + sans, "-days", "90"], check=True, capture_output=True)
hook = value("--deploy-hook")
sys.exit(subprocess.run([hook], env=dict(os.environ, RENEWED_LINEAGE=live)).returncode)
"""
# The deploy hook "reloads the web server": the endpoint serves the lineage's certificate.
HOOK = """#!/bin/sh
echo "$RENEWED_LINEAGE" >> {log}
if [ -n "$FAKE_HOOK_FAIL" ]; then echo "nginx: [emerg] cannot load certificate" >&2; exit 1; fi
cp "$RENEWED_LINEAGE/cert.pem" {served}.pem && cp "$RENEWED_LINEAGE/privkey.pem" {served}.key
"""

# The same, as a reload whose new workers answer half a second after the hook returned.
SLOW_HOOK = """#!/bin/sh
(sleep 0.5; cp "$RENEWED_LINEAGE/cert.pem" {served}.pem; cp "$RENEWED_LINEAGE/privkey.pem" \\
  {served}.key) >/dev/null 2>&1 &
"""


class Endpoint:
    """A TLS server on 127.0.0.1 reading its certificate file at every handshake."""

    def __init__(self, cert: Path):
        self.cert = cert
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(str(self.cert), str(self.cert.with_suffix(".key")))
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.fixture
def acme(tmp_path, monkeypatch):
    """The fake certbot on PATH; returns a helper with the paths and the module's arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    certbot = bin_dir / "certbot"
    certbot.write_text(FAKE_CERTBOT.format(python=sys.executable))
    certbot.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CERTBOT_LOG", str(tmp_path / "certbot.log"))
    monkeypatch.delenv("FAKE_CERTBOT_FAIL", raising=False)
    monkeypatch.delenv("FAKE_HOOK_FAIL", raising=False)

    class Acme:
        config = tmp_path / "letsencrypt"
        hook = tmp_path / "hooks" / "opsplay-deploy"
        served = tmp_path / "served" / "site"
        hook_log = tmp_path / "hook.log"
        script = HOOK.format(log=tmp_path / "hook.log", served=tmp_path / "served" / "site")

        def args(self, **kw):
            base = dict(
                config_dir=str(self.config),
                renew=True,
                acme_directory="https://acme.test/dir",
                deploy_hook=str(self.hook),
                deploy_hook_script=self.script,
                reload_wait=0,
            )
            return dict(base, **kw)

        def certbot_calls(self):
            log = tmp_path / "certbot.log"
            return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

        def hook_runs(self):
            return self.hook_log.read_text().splitlines() if self.hook_log.exists() else []

    (tmp_path / "hooks").mkdir()
    (tmp_path / "served").mkdir()
    return Acme()


def lineage(acme, name, *, days, san):
    """A certbot lineage live/NAME with cert.pem and privkey.pem."""
    cert = make_cert(acme.config / "live" / name, "cert", days=days, san=san)
    (cert.parent / "cert.key").rename(cert.parent / "privkey.pem")
    return cert


def test_a_lineage_inside_the_renew_window_is_renewed_and_the_hook_installed(acme):
    old = lineage(acme, "www.test", days=20, san="DNS:www.test")
    old_serial = serial_of(old)
    make_cert(acme.config / "live" / "far.test", "cert", days=80, san="DNS:far.test")
    rc, result = run_main(crc, acme.args(ca_bundle="/etc/ssl/pebble.pem"))
    assert rc == 0, result
    assert result["changed"] is True and result["problems"] == []
    assert result["planned"]["renew"] == ["www.test"]  # 80 days left: outside the 30-day window
    assert result["done"]["renew"] == ["www.test"]
    (call,) = acme.certbot_calls()
    assert call["argv"] == [
        "--non-interactive", "--config-dir", str(acme.config), "--deploy-hook", str(acme.hook),
        "--no-random-sleep-on-renew", "renew", "--force-renewal", "--cert-name", "www.test",
    ]  # fmt: skip
    assert call["ca"] == "/etc/ssl/pebble.pem"
    # judged by the certificate read again: a new serial, 90 days
    renewed = next(r for r in result["records"] if r["lineage"] == "www.test")
    assert renewed["serial"] == serial_of(old) != old_serial and renewed["days_left"] >= 89
    assert result["msg"] == (
        "2 certificate(s) checked, 0 warning(s), none critical; done: renewed www.test"
    )
    assert acme.hook.read_text() == acme.script
    assert stat.S_IMODE(acme.hook.stat().st_mode) == 0o755
    assert acme.hook_runs() == [str(acme.config / "live" / "www.test")]
    assert not [p for p in acme.hook.parent.iterdir() if p.name.startswith(".opsplay-hook-")]


def test_a_declared_certificate_without_a_lineage_is_issued(acme):
    declared = {"name": "new.test", "domains": ["new.test", "www.new.test"], "webroot": "/srv"}
    rc, result = run_main(crc, acme.args(certificates=[declared], acme_email="ops@new.test"))
    assert rc == 0, result
    assert result["done"]["issue"] == [declared] and result["problems"] == []
    (call,) = acme.certbot_calls()
    assert call["argv"][-14:-3] == [
        "certonly", "--agree-tos", "--server", "https://acme.test/dir", "--cert-name", "new.test",
        "--email", "ops@new.test", "--no-eff-email", "--domain=new.test", "--domain=www.new.test",
    ] and call["argv"][-3:] == ["--webroot", "--webroot-path", "/srv"]  # fmt: skip
    (record,) = result["records"]
    assert record["lineage"] == "new.test"
    assert record["sans"] == ["DNS:new.test", "DNS:www.new.test"]
    assert result["msg"].endswith("done: issued new.test")


def test_a_lineage_whose_domains_changed_is_reissued_not_renewed(acme):
    lineage(acme, "shop.test", days=60, san="DNS:shop.test")
    declared = {
        "name": "shop.test",
        "domains": ["shop.test", "api.shop.test"],
        "method": "standalone",
    }
    rc, result = run_main(crc, acme.args(certificates=[declared]))
    assert rc == 0, result
    assert result["planned"]["reissue"] == [declared] and result["planned"]["renew"] == []
    (call,) = acme.certbot_calls()
    assert "--register-unsafely-without-email" in call["argv"]
    assert call["argv"][-3:] == ["--domain=shop.test", "--domain=api.shop.test", "--standalone"]
    (record,) = result["records"]
    assert sorted(record["sans"]) == ["DNS:api.shop.test", "DNS:shop.test"]
    assert result["problems"] == []


def test_a_failed_renewal_leaves_the_old_certificate_and_says_what_certbot_said(acme, monkeypatch):
    old = lineage(acme, "www.test", days=5, san="DNS:www.test")
    monkeypatch.setenv(
        "FAKE_CERTBOT_FAIL",
        "Saving debug log to /var/log/letsencrypt/letsencrypt.log\n"
        "Failed to renew certificate www.test with error: urn:ietf:params:acme:error:connection\n"
        "All renewals failed.\nAsk for help or search for solutions at https://community\n",
    )
    rc, result = run_main(crc, acme.args())
    assert rc == 1 and result["failed"], result  # problems fail the host
    assert serial_of(old) == serial_of(acme.config / "live" / "www.test" / "cert.pem")
    assert result["done"]["renew"] == ["www.test"] and result["changed"] is True
    assert result["problems"][0].startswith("CRITICAL lineage ")  # still 4.9 days
    assert result["problems"][1] == (
        f"lineage www.test was not renewed, the old certificate (serial {serial_of(old)}) stays "
        "in place (certbot rc 1: Failed to renew certificate www.test with error: "
        "urn:ietf:params:acme:error:connection)"
    )
    assert result["msg"].startswith("cert_renewal: 2 problem(s): CRITICAL lineage")
    assert acme.hook_runs() == []


def test_a_certificate_not_issued_is_a_problem_naming_the_acme_server(acme, monkeypatch):
    monkeypatch.setenv("FAKE_CERTBOT_FAIL", "Error: the ACME server refused the order\n")
    declared = {"name": "new.test", "domains": ["new.test"], "method": "standalone"}
    rc, result = run_main(crc, acme.args(certificates=[declared]))
    assert rc == 1 and result["failed"], result  # problems fail the host
    assert result["problems"] == [
        "certificate new.test was not issued by https://acme.test/dir "
        "(certbot rc 1: Error: the ACME server refused the order)"
    ]


@pytest.fixture
def endpoint(acme):
    """The site serves an old certificate of lineage www.test (the renewed one is on disk)."""
    make_cert(acme.served.parent, acme.served.name, days=10, san="DNS:www.test")
    site = Endpoint(acme.served.with_suffix(".pem"))
    yield site
    site.close()


def test_an_endpoint_serving_an_older_certificate_gets_it_redeployed(acme, endpoint):
    current = lineage(acme, "www.test", days=80, san="DNS:www.test")
    site = {"host": "127.0.0.1", "port": endpoint.port, "server_name": "www.test"}
    rc, result = run_main(crc, acme.args(endpoints=[site]))
    assert rc == 0, result
    assert result["planned"]["redeploy"] == ["www.test"] and result["planned"]["renew"] == []
    assert acme.certbot_calls() == []  # the hook alone, no certbot
    assert acme.hook_runs() == [str(acme.config / "live" / "www.test")]
    served = next(r for r in result["records"] if r["kind"] == "endpoint")
    assert served["serial"] == serial_of(current)
    assert result["problems"] == [] and result["msg"].endswith("done: redeployed www.test")


def test_a_failing_deploy_hook_leaves_the_endpoint_stale_and_says_so(acme, endpoint, monkeypatch):
    current = lineage(acme, "www.test", days=80, san="DNS:www.test")
    old_served = serial_of(acme.served.with_suffix(".pem"))
    monkeypatch.setenv("FAKE_HOOK_FAIL", "1")
    site = {"host": "127.0.0.1", "port": endpoint.port, "server_name": "www.test"}
    rc, result = run_main(crc, acme.args(endpoints=[site]))
    assert rc == 1 and result["failed"], result  # problems fail the host
    (problem,) = result["problems"]
    assert problem.startswith(f"endpoint 127.0.0.1:{endpoint.port} (SNI www.test) still serves")
    assert f"serial {old_served} " in problem and f"holds serial {serial_of(current)}" in problem
    assert problem.endswith(
        "the new certificate is not served (deploy hook rc 1: nginx: [emerg] cannot load"
        " certificate)"
    )


def test_check_mode_installs_no_hook_and_runs_nothing(acme):
    lineage(acme, "www.test", days=20, san="DNS:www.test")
    rc, result = run_main(crc, acme.args(), check_mode=True)
    assert rc == 0, result
    assert result["changed"] is True and result["done"]["renew"] == []
    assert not acme.hook.exists() and acme.certbot_calls() == []


def test_an_unchanged_hook_is_not_rewritten_and_nothing_to_do_is_unchanged(acme):
    lineage(acme, "www.test", days=80, san="DNS:www.test")
    acme.hook.write_text(acme.script)
    acme.hook.chmod(0o755)
    inode = acme.hook.stat().st_ino
    rc, result = run_main(crc, acme.args())
    assert rc == 0, result
    assert result["changed"] is False and acme.hook.stat().st_ino == inode
    assert result["msg"] == "1 certificate(s) checked, 0 warning(s), none critical"
    # the same content with another mode is a change: installed again, 0755
    acme.hook.chmod(0o644)
    rc, result = run_main(crc, acme.args())
    assert result["changed"] is True and stat.S_IMODE(acme.hook.stat().st_mode) == 0o755
    assert acme.certbot_calls() == []


def test_no_lineage_and_nothing_declared_installs_no_hook(acme):
    rc, result = run_main(crc, acme.args())
    assert rc == 0 and result["changed"] is False and not acme.hook.exists()
    assert result["report"] == ["no certificates found or declared"]


def test_lineages_are_the_directories_under_live(tmp_path):
    assert crc.lineages(str(tmp_path)) == []  # no live/: none
    live = tmp_path / "live"
    for name in ("b.test", "a.test", ".hidden"):
        (live / name).mkdir(parents=True)
    (live / "README").write_text("certbot's")
    (live / "link.test").symlink_to(live / "a.test")
    assert crc.lineages(str(tmp_path)) == ["a.test", "b.test"]


def test_a_command_that_cannot_start_is_rc_127_with_the_reason(tmp_path):
    rc, said = crc.run([str(tmp_path / "no-such-certbot")], {})
    assert rc == 127 and "No such file or directory" in said


def test_a_hook_that_cannot_be_put_in_place_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "hook"
    target.mkdir()  # a directory where the hook goes: the rename fails
    (target / "keep").write_text("")
    with pytest.raises(OSError):
        crc.install_hook(str(target), "#!/bin/sh\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hook"]
    assert crc.hook_changed(str(tmp_path / "missing"), "") is True


def test_a_slow_reload_is_waited_for_up_to_reload_wait(acme, endpoint):
    """The hook returns before the web server serves the new certificate (a reload's old
    workers): the module reads the endpoint again until it does, within reload_wait."""
    current = lineage(acme, "www.test", days=80, san="DNS:www.test")
    script = SLOW_HOOK.format(served=acme.served)
    site = {"host": "127.0.0.1", "port": endpoint.port, "server_name": "www.test"}
    rc, result = run_main(
        crc, acme.args(endpoints=[site], deploy_hook_script=script, reload_wait=30)
    )
    assert rc == 0, result
    assert result["problems"] == []
    served = next(r for r in result["records"] if r["kind"] == "endpoint")
    assert served["serial"] == serial_of(current)


def test_unreadable_certificates_are_errors_except_the_endpoint_of_one_not_issued_yet(acme):
    """Check mode on a new host: the certificate is not issued, so its endpoint cannot serve it
    (not a problem); a declared file that is missing and another endpoint that refuses are."""
    declared = {"name": "new.test", "domains": ["new.test"], "method": "standalone"}
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    endpoints = [
        {"host": "127.0.0.1", "port": port, "server_name": "new.test"},
        {"host": "127.0.0.1", "port": port, "server_name": "old.test"},
    ]
    missing = str(acme.config / "missing.pem")
    args = acme.args(certificates=[declared], endpoints=endpoints, files=[missing])
    rc, result = run_main(crc, args, check_mode=True)
    assert rc == 1 and result["failed"], result  # problems fail the host
    assert [r["status"] for r in result["records"]] == ["error", "error", "error"]
    assert result["problems"] == [
        f"ERROR file {missing}: certificate {missing}: No such file or directory",
        f"ERROR endpoint 127.0.0.1:{port} (SNI old.test): cannot read the certificate served: "
        "[Errno 111] Connection refused",
    ]


def test_bad_input_is_refused_before_anything_is_read_or_run(acme):
    lineage(acme, "www.test", days=5, san="DNS:www.test")
    rc, result = run_main(crc, acme.args(warning_days=5, critical_days=10))
    assert rc == 1 and result["opsplay_bad_input"] is True
    assert result["msg"] == (
        "cert_renewal: bad input: cert_renewal_critical_days (10) is above "
        "cert_renewal_warning_days (5)"
    )
    assert acme.certbot_calls() == [] and not acme.hook.exists()
