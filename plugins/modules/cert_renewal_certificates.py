#!/usr/bin/python3
"""Ansible module of roles/cert_renewal: read, decide, act, read again, judge.

Every decision is in module_utils/cert_renewal.py (pure functions, unit-tested without a host
in tests/unit/test_cert_renewal.py); this module reads, runs certbot and writes the hook.

1. Refuse bad input (one line, ``opsplay_bad_input``) before anything is read or changed.
2. Read every certbot lineage's ``cert.pem``, the declared PEM files and what the declared
   endpoints serve (module_utils/certificates.py, the collection's one certificate reader);
   each becomes a record with its status (ok, warning, critical, error).
3. Decide (``renew: true`` only): issue declared certificates without a lineage, reissue those
   whose lineage's SANs are not the declared domains, renew lineages inside the renew window
   (all when forced), redeploy lineages an endpoint serves an older certificate of.
4. Act (never in check mode): install the deploy hook, run certbot and the hook; read again.
5. Judge by the certificates, never by certbot's exit code: every problem in one list.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.cert_renewal import (
    KINDS,
    certbot_argv,
    certbot_env,
    endpoint_base,
    error_record,
    input_problems,
    item_name,
    outcome_problems,
    plan,
    record,
    record_problems,
    report_lines,
    stale,
    stale_problems,
    summary,
    what_was_said,
)
from ansible_collections.opsplay.ops.plugins.module_utils.certificates import (
    CertificateError,
    read_certificate,
    utc_now,
)

DOCUMENTATION = r"""
module: cert_renewal_certificates
short_description: Certificate inventory, expiry check and certbot renewal (opsplay cert_renewal)
description:
  - Reads certbot lineages, PEM files and TLS endpoints; reports each certificate as ok,
    warning, critical or error; with O(renew) issues, reissues, renews and redeploys through
    certbot and its deploy hook, then reads again and names every problem.
  - Read-only unless O(renew); in check mode nothing is written or run, the plan is returned.
  - Refuses bad input with one line and C(opsplay_bad_input=true).
options:
  config_dir: {type: path, required: true, description: certbot's configuration directory.}
  files: {type: list, elements: path, default: [], description: PEM files to check.}
  endpoints:
    type: list
    elements: dict
    default: []
    description: TLS endpoints (host, port 443, server_name = host) read from the host.
  certificates:
    type: list
    elements: dict
    default: []
    description: Certificates the host must have (name, domains, method, webroot).
  warning_days: {type: int, default: 30, description: WARNING below this many days left.}
  critical_days: {type: int, default: 7, description: CRITICAL below this many days left.}
  renew_before_days: {type: int, default: 30, description: Renew below this many days left.}
  renew: {type: bool, default: false, description: Act (issue, reissue, renew, redeploy).}
  force: {type: bool, default: false, description: Renew every lineage, due or not.}
  acme_directory: {type: str, default: "", description: ACME directory for new certificates.}
  acme_email: {type: str, default: "", description: ACME account e-mail; empty for none.}
  ca_bundle: {type: str, default: "", description: REQUESTS_CA_BUNDLE for certbot.}
  deploy_hook: {type: path, required: true, description: Path of certbot's deploy hook.}
  deploy_hook_script: {type: str, default: "", description: Hook content, installed 0755.}
  certbot_timeout: {type: int, default: 300, description: Seconds per certbot run.}
  endpoint_timeout: {type: float, default: 10, description: Seconds per endpoint read.}
  reload_wait:
    type: float
    default: 10
    description: After acting, seconds to read again while an endpoint serves an old certificate.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads and plans; installs, runs and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
author: opsplay
"""

EXAMPLES = r"""
- name: Check certificates (cert-check)
  opsplay.ops.cert_renewal_certificates:
    config_dir: /etc/letsencrypt
    files: [/etc/ssl/certs/internal-api.pem]
    endpoints: [{host: 127.0.0.1, port: 443, server_name: www.example.org}]
    deploy_hook: /usr/local/sbin/opsplay-cert-deploy-hook
  register: certs

- name: Issue, renew and redeploy (renew-certs)
  opsplay.ops.cert_renewal_certificates:
    config_dir: /etc/letsencrypt
    certificates: [{name: www.example.org, domains: [www.example.org], webroot: /var/www/html}]
    endpoints: [{host: www.example.org}]
    renew: true
    acme_directory: https://acme-staging-v02.api.letsencrypt.org/directory
    deploy_hook: /usr/local/sbin/opsplay-cert-deploy-hook
    deploy_hook_script: "{{ lookup('ansible.builtin.template', 'deploy-hook.sh.j2') }}"
"""

RETURN = r"""
records:
  description: One per certificate read (kind lineage/file/endpoint, name, lineage, subject,
    sans, issuer, serial, not_after, days_left, seconds_left, status, error), last reading.
  type: list
  returned: always
report: {description: One line per certificate, type: list, returned: always}
problems: {description: Every problem; the role fails when not empty, type: list, returned: always}
planned: {description: "{issue, reissue, renew, redeploy} decided", type: dict, returned: always}
done: {description: "{issue, reissue, renew, redeploy} that ran", type: dict, returned: always}
msg: {description: The summary line, type: str, returned: always}
"""


def lineages(config_dir):
    """certbot lineages: the directories under live/, sorted (none when live/ is missing)."""
    try:
        entries = list(os.scandir(os.path.join(config_dir, "live")))
    except OSError:
        return []
    names = (e.name for e in entries if e.is_dir(follow_symlinks=False))
    return sorted(n for n in names if not n.startswith("."))


def fetch_served(host, port, server_name, timeout):
    """The PEM certificate an endpoint serves (not verified: it is read, not trusted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        tls = context.wrap_socket(sock, server_hostname=server_name)
        try:
            der = tls.getpeercert(binary_form=True)
        finally:
            tls.close()
    if not der:
        raise OSError("no certificate served")
    return ssl.DER_cert_to_PEM_cert(der)


def read_served(endpoint, timeout):
    """What an endpoint serves, read like a file; CertificateError naming why not."""
    base = endpoint_base(endpoint)
    port = int(endpoint.get("port") or 443)
    try:
        pem = fetch_served(endpoint["host"], port, base["server_name"], timeout)
    except socket.timeout:
        raise CertificateError("no TLS answer within %g s" % timeout) from None
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError("cannot read the certificate served: %s" % exc) from None
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(pem)
        handle.flush()
        try:
            return read_certificate(handle.name)
        except CertificateError as exc:
            raise CertificateError(str(exc).replace(handle.name, "served")) from None


def read_all(p, names, now, reader=read_certificate, served=read_served):
    """Records of every lineage, declared file and endpoint, in that order."""
    targets = [
        ({"kind": "lineage", "name": os.path.join(p["config_dir"], "live", n, "cert.pem"),
          "lineage": n}, None)
        for n in names
    ]  # fmt: skip
    targets += [({"kind": "file", "name": f, "lineage": ""}, None) for f in p["files"]]
    targets += [(endpoint_base(e), e) for e in p["endpoints"]]
    records = []
    for base, endpoint in targets:
        try:
            cert = served(endpoint, p["endpoint_timeout"]) if endpoint else reader(base["name"])
        except CertificateError as exc:
            records.append(error_record(base, exc))
            continue
        records.append(record(base, cert, now, p["warning_days"], p["critical_days"]))
    return records


def read_again(p):
    """Records after acting. A reloaded web server answers with its old workers for a moment:
    while an endpoint still serves an older certificate than its lineage, read again for up to
    ``reload_wait`` seconds."""
    deadline = time.monotonic() + p["reload_wait"]
    while True:
        records = read_all(p, lineages(p["config_dir"]), utc_now())
        if not stale(records) or time.monotonic() >= deadline:
            return records
        time.sleep(0.5)


def run(argv, env):
    try:
        proc = subprocess.run(
            argv, env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, errors="replace", check=False,
        )  # fmt: skip
    except OSError as exc:
        return 127, str(exc)
    return proc.returncode, proc.stderr


def hook_changed(path, script):
    """Whether the deploy hook at path differs from script (content or mode 0755)."""
    try:
        with open(path) as handle:
            same = handle.read() == script
        return not same or (os.stat(path).st_mode & 0o7777) != 0o755
    except OSError:
        return True


def install_hook(path, script):
    """Write the hook atomically, root-owned 0755 (as the template task did)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".opsplay-hook-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(script)
        os.chmod(tmp, 0o755)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def act(p, planned):
    """Run certbot or the hook for every planned item; (done, what each run said)."""
    done = {kind: [] for kind in KINDS}
    said = {}
    for kind in KINDS:
        for item in planned[kind]:
            rc, stderr = run(certbot_argv(p, kind, item), certbot_env(p, kind, item))
            done[kind].append(item)
            said[item_name(item)] = what_was_said(kind, rc, stderr)
    return done, said


ARGUMENT_SPEC = {
    "config_dir": {"type": "path", "required": True},
    "files": {"type": "list", "elements": "path", "default": []},
    "endpoints": {"type": "list", "elements": "dict", "default": []},
    "certificates": {"type": "list", "elements": "dict", "default": []},
    "warning_days": {"type": "int", "default": 30},
    "critical_days": {"type": "int", "default": 7},
    "renew_before_days": {"type": "int", "default": 30},
    "renew": {"type": "bool", "default": False},
    "force": {"type": "bool", "default": False},
    "acme_directory": {"type": "str", "default": ""},
    "acme_email": {"type": "str", "default": ""},
    "ca_bundle": {"type": "str", "default": ""},
    "deploy_hook": {"type": "path", "required": True},
    "deploy_hook_script": {"type": "str", "default": ""},
    "certbot_timeout": {"type": "int", "default": 300},
    "endpoint_timeout": {"type": "float", "default": 10},
    "reload_wait": {"type": "float", "default": 10},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    refused = input_problems(p)
    if refused:
        module.fail_json(
            msg="cert_renewal: bad input: " + "; ".join(refused), opsplay_bad_input=True
        )
    names = lineages(p["config_dir"])
    before = after = read_all(p, names, utc_now())
    planned = plan(p, names, before)
    done, said = {kind: [] for kind in KINDS}, {}
    # The hook only where certbot has or will have a lineage.
    hook = p["renew"] and (names or p["certificates"])
    changed = bool(hook and hook_changed(p["deploy_hook"], p["deploy_hook_script"]))
    if module.check_mode:
        changed = changed or any(planned[k] for k in KINDS)
    else:
        if changed:
            install_hook(p["deploy_hook"], p["deploy_hook_script"])
        done, said = act(p, planned)
        if any(done[k] for k in KINDS):
            changed = True
            after = read_again(p)
    pending = [d for k in ("issue", "reissue") for c in planned[k] if c not in done[k]
               for d in c["domains"]]  # fmt: skip
    problems = record_problems(after, pending, p["critical_days"])
    problems += outcome_problems(p, before, after, done, said)
    problems += stale_problems(after, said)
    module.exit_json(
        changed=changed,
        msg=summary(after, problems, planned, done),
        records=after,
        report=report_lines(after),
        problems=problems,
        planned=planned,
        done=done,
    )


if __name__ == "__main__":
    main()
