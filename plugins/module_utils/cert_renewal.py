"""The decisions of roles/cert_renewal, without a host: bad input, a certificate's status,
which endpoint belongs to which lineage, what to issue, reissue, renew and redeploy, certbot's
command lines, what certbot said, every problem and the report. Used by
plugins/modules/cert_renewal_certificates.py, which reads, runs and writes; unit-tested in
tests/unit/test_cert_renewal.py.

A record is one certificate read: kind (lineage, file, endpoint), name (path, or
``host:port (SNI name)``), lineage, server_name (endpoints), subject, sans, issuer, serial (hex),
not_after (ISO 8601), days_left (rounded down to 0.1), seconds_left, status (ok, warning,
critical, error) and error. Certificates are read by module_utils/certificates.py.
"""

from __future__ import annotations

import math
import os
import re

from ansible_collections.opsplay.ops.plugins.module_utils.certificates import seconds_left

KINDS = ("issue", "reissue", "renew", "redeploy")
NOISE = re.compile(r"Saving debug log|Ask for help|See the logfile|- - -")
ERROR_LINE = re.compile(r"with error:|^Error|error:")


def input_problems(p):
    """One message per bad value (types are checked by meta/argument_specs.yml)."""
    found = []
    if p["critical_days"] > p["warning_days"]:
        found.append(
            "cert_renewal_critical_days (%s) is above cert_renewal_warning_days (%s)"
            % (p["critical_days"], p["warning_days"])
        )
    if p["renew"] and p["certificates"] and not p["acme_directory"].strip():
        found.append(
            "cert_renewal_acme_directory is empty: set the ACME directory URL to issue certificates"
        )
    for number, cert in enumerate(p["certificates"], start=1):
        method = cert.get("method") or "webroot"
        if not cert.get("name") or not cert.get("domains") or isinstance(cert["domains"], str):
            found.append(
                "cert_renewal_certificates item %d needs a name and a non-empty domains list"
                % number
            )
        elif method not in ("webroot", "standalone"):
            found.append(
                "cert_renewal_certificates %s: method must be webroot or standalone, not %s"
                % (cert["name"], method)
            )
        elif method == "webroot" and not cert.get("webroot"):
            found.append(
                "cert_renewal_certificates %s: the webroot method needs a webroot directory"
                % cert["name"]
            )
    for number, endpoint in enumerate(p["endpoints"], start=1):
        if not endpoint.get("host"):
            found.append("cert_renewal_endpoints item %d needs a host" % number)
    return found


def endpoint_base(endpoint):
    sni = endpoint.get("server_name") or endpoint["host"]
    port = int(endpoint.get("port") or 443)
    name = "%s:%s (SNI %s)" % (endpoint["host"], port, sni)
    return {"kind": "endpoint", "name": name, "lineage": "", "server_name": sni}


def error_record(base, error):
    fields = {"status": "error", "error": " ".join(str(error).split()), "serial": ""}
    fields.update(not_after="", days_left=None, seconds_left=None, subject="", sans=[], issuer="")
    return dict(base, **fields)


def record(base, cert, now, warning_days, critical_days):
    """A certificate read (certificates.read_certificate's dict) as a report record."""
    seconds = seconds_left(cert["not_after"], now)
    status = "ok"
    if seconds < critical_days * 86400:
        status = "critical"
    elif seconds < warning_days * 86400:
        status = "warning"
    fields = {"status": status, "error": "", "serial": cert["serial"], "seconds_left": seconds}
    fields.update(not_after=cert["not_after"], days_left=math.floor(seconds / 8640) / 10)
    fields.update(subject=cert["subject"], sans=list(cert["sans"]), issuer=cert["issuer"])
    return dict(base, **fields)


def endpoint_lineages(records):
    """Endpoint name -> the lineage whose SANs hold its SNI name (exactly or by a one-label
    wildcard); the last such lineage when several do."""
    found = {}
    for e in (r for r in records if r["kind"] == "endpoint"):
        wildcard = "DNS:*." + e["server_name"].split(".", 1)[-1]
        for lineage in records:
            usable = lineage["kind"] == "lineage" and lineage["status"] != "error"
            sans = lineage["sans"] if usable else []
            if "DNS:" + e["server_name"] in sans or wildcard in sans:
                found[e["name"]] = lineage["lineage"]
    return found


def stale(records):
    """Endpoints serving another certificate than their lineage's current one."""
    lineage_of = {r["lineage"]: r for r in records if r["kind"] == "lineage"}
    endpoint_of = {r["name"]: r for r in records if r["kind"] == "endpoint"}
    found = []
    for name, lineage in endpoint_lineages(records).items():
        e, held = endpoint_of[name], lineage_of[lineage]
        if e["status"] != "error" and e["serial"] != held["serial"]:
            found.append(
                {"endpoint": name, "lineage": lineage, "served": e["serial"],
                 "served_not_after": e["not_after"], "expected": held["serial"]}
            )  # fmt: skip
    return found


def domains_differ(cert, held):
    """Whether a lineage's SANs are not exactly the declared domains (case aside)."""
    wanted = {"dns:" + str(d).lower() for d in cert["domains"]}
    return wanted != {str(s).lower() for s in held["sans"]}


def plan(p, names, records):
    """What to issue, reissue, renew and redeploy; nothing unless ``renew``."""
    chosen = {kind: [] for kind in KINDS}
    if not p["renew"]:
        return chosen
    held = {r["lineage"]: r for r in records if r["kind"] == "lineage" and r["status"] != "error"}
    for cert in p["certificates"]:
        if cert["name"] not in names:
            chosen["issue"].append(cert)
        elif cert["name"] in held and domains_differ(cert, held[cert["name"]]):
            chosen["reissue"].append(cert)
    reissued = [c["name"] for c in chosen["reissue"]]
    window = p["renew_before_days"] * 86400
    for lineage, r in held.items():
        if lineage not in reissued and (p["force"] or r["seconds_left"] < window):
            chosen["renew"].append(lineage)
    acted = chosen["renew"] + reissued
    for s in stale(records):
        if s["lineage"] not in acted and s["lineage"] not in chosen["redeploy"]:
            chosen["redeploy"].append(s["lineage"])
    return chosen


def certbot_argv(p, kind, item):
    """certbot's (or the hook's) command line for one planned item; `timeout` bounds certbot
    (rc 124), so a hung ACME server is reported like any other failure."""
    if kind == "redeploy":
        return [p["deploy_hook"]]
    argv = ["timeout", str(p["certbot_timeout"]), "certbot", "--non-interactive"]
    argv += ["--config-dir", p["config_dir"], "--deploy-hook", p["deploy_hook"]]
    # certbot renew sleeps up to 8 minutes at random when it has no terminal.
    argv += ["--no-random-sleep-on-renew"]
    if kind == "renew":
        return [*argv, "renew", "--force-renewal", "--cert-name", item]
    argv += [
        "certonly",
        "--agree-tos",
        "--server",
        p["acme_directory"],
        "--cert-name",
        item["name"],
    ]
    email = p["acme_email"]
    argv += ["--email", email, "--no-eff-email"] if email else ["--register-unsafely-without-email"]
    argv += ["--domain=%s" % d for d in item["domains"]]
    if (item.get("method") or "webroot") == "standalone":
        return [*argv, "--standalone"]
    return [*argv, "--webroot", "--webroot-path", item["webroot"]]


def certbot_env(p, kind, item):
    if kind == "redeploy":
        return {
            "RENEWED_LINEAGE": os.path.join(p["config_dir"], "live", item),
            "RENEWED_DOMAINS": "",
        }
    return {"REQUESTS_CA_BUNDLE": p["ca_bundle"]} if p["ca_bundle"] else {}


def what_was_said(kind, rc, stderr):
    """certbot's or the hook's failure in one line: the deploy hook's error output when it
    failed, else certbot's error lines ("... with error: ...") or its last lines."""
    hook = re.search(r"ran with error output:\s*([\s\S]*)$", stderr)
    text = hook.group(1) if hook else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not NOISE.match(line)]
    errors = [line for line in lines if ERROR_LINE.search(line)]
    said = " ".join(errors[-2:] if errors and not hook else lines[-3:])
    said = ": " + said if said else ""
    if hook:
        return "certbot rc %s, its deploy hook failed%s" % (rc, said)
    if kind == "redeploy":
        return "deploy hook rc %s%s" % (rc, said)
    return "certbot rc %s%s" % (rc, said)


def item_name(item):
    return item["name"] if isinstance(item, dict) else item


def record_problems(records, pending_domains, critical_days):
    """Unreadable and CRITICAL certificates; an endpoint of a certificate not issued yet (check
    mode on a new host) cannot serve it and is not one."""
    found = []
    for r in records:
        if r["status"] == "error" and not (
            r["kind"] == "endpoint" and r["server_name"] in pending_domains
        ):
            found.append("ERROR %s %s: %s" % (r["kind"], r["name"], r["error"]))
        elif r["status"] == "critical":
            found.append(
                "CRITICAL %s %s expires in %s days (not after %s, critical below %s days)"
                % (r["kind"], r["name"], r["days_left"], r["not_after"], critical_days)
            )
    return found


def outcome_problems(p, before, after, done, said):
    """Certificates not issued (no lineage), not reissued (SANs not the declared domains) and
    lineages not renewed (serial or not-after unchanged), each with what certbot said."""
    found = []
    held_before = {r["lineage"]: r for r in before if r["kind"] == "lineage"}
    held = {r["lineage"]: r for r in after if r["kind"] == "lineage"}
    for cert in done["issue"]:
        if cert["name"] not in held:
            found.append(
                "certificate %s was not issued by %s (%s)"
                % (cert["name"], p["acme_directory"], said.get(cert["name"], "certbot did not run"))
            )
    for cert in done["reissue"]:
        r = held.get(cert["name"])
        if r is None or r["status"] == "error" or domains_differ(cert, r):
            holds = " ".join(r["sans"]) if r else "nothing"
            found.append(
                "certificate %s was not reissued for %s, the lineage holds %s (%s)"
                % (cert["name"], ", ".join(cert["domains"]), holds,
                   said.get(cert["name"], "certbot did not run"))
            )  # fmt: skip
    for lineage in done["renew"]:
        old, new = held_before.get(lineage), held.get(lineage)
        if old and new and (old["serial"] == new["serial"] or old["not_after"] == new["not_after"]):
            found.append(
                "lineage %s was not renewed, the old certificate (serial %s) stays in place (%s)"
                % (lineage, old["serial"], said.get(lineage, "certbot did not run"))
            )
    return found


def stale_problems(records, said):
    return [
        "endpoint %s still serves serial %s (not after %s) but lineage %s holds serial %s: the new "
        "certificate is not served%s"
        % (s["endpoint"], s["served"], s["served_not_after"], s["lineage"], s["expected"],
           " (%s)" % said[s["lineage"]] if s["lineage"] in said else "")
        for s in stale(records)
    ]  # fmt: skip


def report_lines(records):
    """One line per certificate."""
    lines = []
    for r in records:
        if r["status"] == "error":
            lines.append("ERROR    %s %s: %s" % (r["kind"], r["name"], r["error"]))
            continue
        lines.append(
            "%-8s %s %s: %s days left, not after %s, subject %s, SANs %s, issuer %s, serial %s"
            % (r["status"].upper(), r["kind"], r["name"], r["days_left"], r["not_after"],
               r["subject"], " ".join(r["sans"]) or "-", r["issuer"], r["serial"])
        )  # fmt: skip
    return lines or ["no certificates found or declared"]


def summary(records, problems, planned, done):
    """The role's one line: its problems, or what was checked and done (or would be)."""
    if problems:
        return "cert_renewal: %d problem(s): %s" % (len(problems), "; ".join(problems))
    acted = any(done[k] for k in KINDS)
    shown = done if acted else planned
    verbs = {"issue": "issued", "reissue": "reissued", "renew": "renewed", "redeploy": "redeployed"}
    names = ["%s %s" % (verbs[k], item_name(i)) for k in KINDS for i in shown[k]]
    warnings = sum(r["status"] == "warning" for r in records)
    line = "%d certificate(s) checked, %d warning(s), none critical" % (len(records), warnings)
    if names:
        line += "; %s%s" % ("done: " if acted else "would do (check mode): ", ", ".join(names))
    return line
