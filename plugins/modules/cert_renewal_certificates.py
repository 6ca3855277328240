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
    "host": {"type": "str", "default": ""},
}


def stats(host, result):
    """The host's report for the run's data (ansible_stats, aggregated as set_stats would):
    data.cert_renewal.HOST with the one-line summary the CLI shows and a line per certificate."""
    report = {"summary": result["msg"], "certificates": result["report"]}
    report["problems"] = result["problems"]
    return {"data": {"cert_renewal": {host: report}}, "per_host": False, "aggregate": True}


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
    result = {
        "changed": changed,
        "msg": summary(after, problems, planned, done),
        "records": after,
        "report": report_lines(after),
        "problems": problems,
        "planned": planned,
        "done": done,
    }
    if problems:  # the host fails naming every problem (Ansible takes no stats from a failure)
        module.fail_json(**result)
    if p["host"]:
        result["ansible_stats"] = stats(p["host"], result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
