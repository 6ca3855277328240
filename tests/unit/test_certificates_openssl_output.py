"""module_utils/certificates.py when openssl's answer lacks what a certificate must have: one
line naming the file, never a traceback (openssl's output is replaced: no real certificate
lacks a notAfter)."""

from __future__ import annotations

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import certificates


def test_openssl_output_without_a_date_or_serial_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "odd.pem"
    path.write_bytes(certificates.PEM_MARKER + b"\nAAAA\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(certificates, "_run_openssl", lambda p: "subject=CN = odd\n")
    with pytest.raises(certificates.CertificateError) as raised:
        certificates.read_certificate(str(path))
    assert str(raised.value) == f"certificate {path}: no notAfter or serial in openssl's output"
    now = certificates.utc_now()
    assert certificates.read_or_error(str(path), now) == {
        "path": str(path),
        "error": "no notAfter or serial in openssl's output",
    }
