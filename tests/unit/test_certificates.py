"""plugins/module_utils/certificates.py: one reader of a PEM certificate file (notAfter, serial,
subject, SANs, days left), with real certificates made by ``openssl req -x509``."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import certificates

UTC = datetime.UTC


def make_cert(tmp_path, name, *, days, subject="/CN=example.test", san=None):
    """A self-signed certificate valid for `days` from now."""
    key, cert = tmp_path / (name + ".key"), tmp_path / (name + ".pem")
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    command += ["-nodes", "-keyout", str(key), "-out", str(cert), "-subj", subject]
    if san:
        command += ["-addext", "subjectAltName=" + san]
    command += ["-days", str(days)]
    subprocess.run(command, check=True, capture_output=True)
    return str(cert)


def openssl_field(path, flag):
    out = subprocess.run(
        ["openssl", "x509", "-noout", flag, "-in", path], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().split("=", 1)[1]


def make_expired_cert(tmp_path, name):
    """A certificate that expired a day ago: openssl req refuses a negative -days, openssl x509
    -req signs a request with one (notAfter = now - 1 day)."""
    key, csr, cert = (str(tmp_path / (name + ext)) for ext in (".key", ".csr", ".pem"))
    subprocess.run(
        [
            *("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=expired.test"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-signkey", key, "-days", "-1", "-out", cert],
        check=True,
        capture_output=True,
    )
    return cert


def test_reads_every_field(tmp_path):
    path = make_cert(
        tmp_path,
        "full",
        days=30,
        subject="/CN=example.test/O=Ops, Inc",
        san="DNS:example.test,DNS:www.example.test,IP:10.0.0.1",
    )
    cert = certificates.read_certificate(path)
    assert cert["path"] == path
    assert cert["subject"] == "CN=example.test, O=Ops, Inc"
    assert cert["issuer"] == cert["subject"]
    assert cert["sans"] == ["DNS:example.test", "DNS:www.example.test", "IP:10.0.0.1"]
    assert cert["serial"] == f"{int(openssl_field(path, '-serial'), 16):X}"
    not_after = certificates.parse_time(cert["not_after"])
    expected = datetime.datetime.strptime(
        openssl_field(path, "-enddate"), "%b %d %H:%M:%S %Y %Z"
    ).replace(tzinfo=UTC)
    assert not_after == expected
    assert certificates.parse_time(cert["not_before"]) <= certificates.utc_now()
    assert certificates.days_left(cert["not_after"], certificates.utc_now()) in (29, 30)


def test_certificate_without_sans(tmp_path):
    cert = certificates.read_certificate(make_cert(tmp_path, "plain", days=5, subject="/CN=a"))
    assert cert["sans"] == []
    assert cert["subject"] == "CN=a"


def test_expiring_in_two_days(tmp_path):
    cert = certificates.read_certificate(make_cert(tmp_path, "soon", days=2))
    now = certificates.utc_now()
    # openssl -days 2 is 2 * 86400 s from when it ran: just under 2 days left, so 1 whole day
    assert certificates.days_left(cert["not_after"], now) == 1
    assert 86400 < certificates.seconds_left(cert["not_after"], now) <= 2 * 86400


def test_expired(tmp_path):
    cert = certificates.read_certificate(make_expired_cert(tmp_path, "old"))
    assert cert["subject"] == "CN=expired.test"
    now = certificates.utc_now()
    # notAfter is one day before the certificate was made, a moment ago
    seconds = certificates.seconds_left(cert["not_after"], now)
    assert -86400 - 600 < seconds <= -86400
    # rounded down: -1 exactly a day after, -2 once more than a day has passed
    assert certificates.days_left(cert["not_after"], now) == (-1 if seconds == -86400 else -2)
    an_hour_after = certificates.parse_time(cert["not_after"]) + datetime.timedelta(hours=1)
    assert certificates.days_left(cert["not_after"], an_hour_after) == -1


def test_days_left_rounds_down():
    not_after = "2027-11-24T07:00:00Z"
    at = datetime.datetime(2027, 11, 21, 8, 0, tzinfo=UTC)  # 2 days 23 hours before
    assert certificates.days_left(not_after, at) == 2
    assert certificates.days_left(not_after, datetime.datetime(2027, 11, 24, 7, tzinfo=UTC)) == 0


def test_first_certificate_of_a_chain(tmp_path):
    leaf = make_cert(tmp_path, "leaf", days=10, subject="/CN=leaf")
    other = make_cert(tmp_path, "ca", days=900, subject="/CN=ca")
    chain = tmp_path / "fullchain.pem"
    chain.write_bytes(Path(leaf).read_bytes() + Path(other).read_bytes())
    assert certificates.read_certificate(str(chain))["subject"] == "CN=leaf"


def test_missing_file(tmp_path):
    path = str(tmp_path / "missing.pem")
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.read_certificate(path)
    assert str(caught.value) == f"certificate {path}: No such file or directory"


def test_not_a_certificate(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.read_certificate(str(path))
    assert str(caught.value) == f"certificate {path}: not a PEM certificate"


def test_damaged_pem(tmp_path):
    path = tmp_path / "broken.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.read_certificate(str(path))
    message = str(caught.value)
    assert message.startswith(f"certificate {path}: openssl cannot read it (")
    assert "\n" not in message


def test_openssl_missing(tmp_path, monkeypatch):
    path = make_cert(tmp_path, "ok", days=5)
    monkeypatch.setenv("PATH", str(tmp_path))  # no openssl there
    with pytest.raises(certificates.CertificateError) as caught:
        certificates.read_certificate(path)
    assert str(caught.value) == (
        f"certificate {path}: the openssl command is not installed on this host"
    )


def test_parse_openssl_output_maps_san_types():
    text = (
        "notAfter=Nov 24 07:00:00 2027 GMT\nserial=0A\nsubject=CN=x\n"
        "X509v3 Subject Alternative Name: \n"
        "    DNS:x, IP Address:10.0.0.1, email:a@b, URI:https://x/\n"
    )
    fields = certificates.parse_openssl_output(text)
    assert fields["serial"] == "A"
    assert fields["not_after"] == "2027-11-24T07:00:00Z"
    assert fields["sans"] == ["DNS:x", "IP:10.0.0.1", "email:a@b", "URI:https://x/"]
    with pytest.raises(ValueError):
        certificates.parse_openssl_output("subject=CN=x\n")
