"""roles/cert_renewal's decisions (plugins/module_utils/cert_renewal.py): a certificate's status,
what renew-certs issues, reissues, renews and redeploys, and every problem it names. No host:
records are built from fixed dates; tests/unit/test_cert_renewal_module.py runs the module."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import cert_renewal as cr

NOW = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC)
DAY = 86400
DIRECTORY = "https://127.0.0.1:14000/dir"


def params(**over):
    p = {
        "config_dir": "/etc/letsencrypt",
        "files": [],
        "endpoints": [],
        "certificates": [],
        "warning_days": 30,
        "critical_days": 7,
        "renew_before_days": 30,
        "renew": True,
        "force": False,
        "acme_directory": DIRECTORY,
        "acme_email": "",
        "ca_bundle": "",
        "deploy_hook": "/usr/local/sbin/opsplay-cert-deploy-hook",
        "certbot_timeout": 300,
        "endpoint_timeout": 10,
    }
    p.update(over)
    return p


def iso(seconds_from_now):
    return (NOW + datetime.timedelta(seconds=seconds_from_now)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cert(seconds, serial="A1", sans=("DNS:www.example.test",)):
    subject = "CN=" + sans[0].split(":", 1)[-1] if sans else "CN=x"
    return {"not_after": iso(seconds), "serial": serial, "subject": subject,
            "issuer": "CN=Test CA", "sans": list(sans)}  # fmt: skip


def lineage(name, seconds, serial="A1", sans=None):
    base = {"kind": "lineage", "name": f"/etc/letsencrypt/live/{name}/cert.pem", "lineage": name}
    return cr.record(base, cert(seconds, serial, sans or ("DNS:" + name,)), NOW, 30, 7)


def endpoint(sni, seconds=80 * DAY, serial="A1", host="127.0.0.1"):
    base = cr.endpoint_base({"host": host, "server_name": sni})
    return cr.record(base, cert(seconds, serial, ("DNS:" + sni,)), NOW, 30, 7)


def broken(kind, name, error="certificate x: No such file or directory"):
    if kind == "endpoint":
        return cr.error_record(cr.endpoint_base({"host": name}), error)
    return cr.error_record({"kind": kind, "name": name, "lineage": name}, error)


def want(name, *domains, method="webroot"):
    return {"name": name, "domains": list(domains or [name]), "method": method,
            "webroot": "/var/www/html"}  # fmt: skip


# --- a certificate's status ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "status", "days"),
    [
        (-3600, "critical", -0.1),  # expired an hour ago
        (-2 * DAY, "critical", -2.0),
        (2 * DAY + 23 * 3600, "critical", 2.9),  # what the README shows: "expires in 2.9 days"
        (7 * DAY - 1, "critical", 6.9),
        (7 * DAY, "warning", 7.0),  # below critical means strictly below
        (20 * DAY, "warning", 20.0),
        (30 * DAY - 1, "warning", 29.9),
        (30 * DAY, "ok", 30.0),
        (89 * DAY + 100, "ok", 89.0),
    ],
)
def test_status_and_days_left_follow_the_windows(seconds, status, days):
    r = cr.record({"kind": "file", "name": "/x.pem", "lineage": ""}, cert(seconds), NOW, 30, 7)
    assert (r["status"], r["days_left"], r["seconds_left"]) == (status, days, seconds)
    assert r["error"] == "" and r["subject"] == "CN=www.example.test"


def test_an_unreadable_certificate_is_an_error_record_in_one_line():
    r = cr.error_record({"kind": "file", "name": "/x.pem", "lineage": ""}, "bad\n  thing\t here")
    assert r["status"] == "error" and r["error"] == "bad thing here"
    assert r["days_left"] is None and r["sans"] == [] and r["serial"] == ""


def test_endpoint_names_say_host_port_and_sni():
    assert cr.endpoint_base({"host": "10.0.0.5"})["name"] == "10.0.0.5:443 (SNI 10.0.0.5)"
    base = cr.endpoint_base({"host": "127.0.0.1", "port": 8443, "server_name": "www.test"})
    assert base["name"] == "127.0.0.1:8443 (SNI www.test)" and base["server_name"] == "www.test"


# --- what to renew --------------------------------------------------------------------


def test_renew_window_inside_outside_expired_and_forced():
    records = [
        lineage("due", 29 * DAY),
        lineage("fresh", 31 * DAY),
        lineage("expired", -DAY),
        lineage("edge", 30 * DAY),  # exactly 30 days left: not below the window
    ]
    names = ["due", "edge", "expired", "fresh"]
    assert cr.plan(params(), names, records)["renew"] == ["due", "expired"]
    assert cr.plan(params(force=True), names, records)["renew"] == [
        "due",
        "fresh",
        "expired",
        "edge",
    ]
    assert cr.plan(params(renew_before_days=40), names, records)["renew"] == [
        "due",
        "fresh",
        "expired",
        "edge",
    ]


def test_cert_check_decides_nothing():
    records = [lineage("due", DAY), endpoint("due", serial="OLD")]
    chosen = cr.plan(params(renew=False, certificates=[want("new")]), ["due"], records)
    assert chosen == {"issue": [], "reissue": [], "renew": [], "redeploy": []}


def test_a_missing_certificate_is_issued_an_unreadable_lineage_is_not_renewed():
    records = [broken("lineage", "damaged")]
    chosen = cr.plan(params(certificates=[want("new"), want("damaged")]), ["damaged"], records)
    # "damaged" has a lineage (certbot would refuse a second one): it is reported, not issued
    assert [c["name"] for c in chosen["issue"]] == ["new"]
    assert chosen["renew"] == [] and chosen["reissue"] == []
    problems = cr.record_problems(records, [], 7)
    assert problems == [
        "ERROR lineage damaged: certificate x: No such file or directory",
    ]


def test_a_mismatched_san_set_is_reissued_not_renewed():
    records = [lineage("www", 80 * DAY, sans=["DNS:www"]), lineage("api", 10 * DAY)]
    declared = [want("www", "www", "alt"), want("api")]
    chosen = cr.plan(params(certificates=declared), ["api", "www"], records)
    assert [c["name"] for c in chosen["reissue"]] == ["www"]
    assert chosen["renew"] == ["api"] and chosen["issue"] == []
    # a due lineage whose domains changed is reissued once, not renewed as well
    records = [lineage("www", DAY, sans=["DNS:www"])]
    chosen = cr.plan(params(certificates=[want("www", "www", "alt")]), ["www"], records)
    assert [c["name"] for c in chosen["reissue"]] == ["www"] and chosen["renew"] == []


def test_the_same_san_set_in_another_order_or_case_is_not_a_mismatch():
    held = lineage("www", 80 * DAY, sans=["DNS:alt.example.test", "DNS:WWW.example.test"])
    assert not cr.domains_differ(want("www", "www.example.test", "alt.example.test"), held)
    assert cr.domains_differ(want("www", "www.example.test"), held)  # a name fewer
    chosen = cr.plan(params(certificates=[want("www", "www.example.test", "alt.example.test")]),
                     ["www"], [held])  # fmt: skip
    assert chosen == {"issue": [], "reissue": [], "renew": [], "redeploy": []}


# --- endpoints ------------------------------------------------------------------------


def test_an_endpoint_serving_an_old_serial_is_stale_and_redeployed():
    records = [lineage("www.test", 80 * DAY, serial="NEW"), endpoint("www.test", serial="OLD")]
    assert cr.stale(records) == [
        {
            "endpoint": "127.0.0.1:443 (SNI www.test)",
            "lineage": "www.test",
            "served": "OLD",
            "served_not_after": iso(80 * DAY),
            "expected": "NEW",
        }
    ]
    assert cr.plan(params(), ["www.test"], records)["redeploy"] == ["www.test"]
    # due as well: the renewal deploys it, no separate redeploy
    records[0] = lineage("www.test", DAY, serial="NEW")
    chosen = cr.plan(params(), ["www.test"], records)
    assert chosen["renew"] == ["www.test"] and chosen["redeploy"] == []
    # two endpoints of one lineage: one redeploy
    records = [lineage("www.test", 80 * DAY, serial="NEW"), endpoint("www.test", serial="OLD"),
               endpoint("www.test", serial="OLD", host="10.0.0.1")]  # fmt: skip
    assert cr.plan(params(), ["www.test"], records)["redeploy"] == ["www.test"]


def test_endpoints_match_lineages_by_exact_name_or_one_label_wildcard_only():
    star = lineage("star", 80 * DAY, serial="S", sans=["DNS:*.example.test"])
    records = [star, endpoint("a.example.test", serial="S"), endpoint("b.a.example.test"),
               endpoint("other.test", serial="X")]  # fmt: skip
    assert cr.endpoint_lineages(records) == {"127.0.0.1:443 (SNI a.example.test)": "star"}
    # an endpoint whose name is on no lineage is reported, never held to one
    assert cr.stale(records) == []


def test_an_unreachable_endpoint_is_an_error_not_stale_and_pending_issue_excuses_it():
    records = [lineage("www.test", 80 * DAY), broken("endpoint", "www.test", "connection refused")]
    assert cr.stale(records) == []
    assert cr.record_problems(records, [], 7) == [
        "ERROR endpoint www.test:443 (SNI www.test): connection refused"
    ]
    # --check on a new host: the endpoint cannot serve a certificate not issued yet
    assert cr.record_problems(records, ["www.test"], 7) == []


def test_critical_records_name_their_expiry_and_threshold():
    records = [lineage("soon", 2 * DAY + 23 * 3600), lineage("fine", 20 * DAY)]
    assert cr.record_problems(records, [], 7) == [
        "CRITICAL lineage /etc/letsencrypt/live/soon/cert.pem expires in 2.9 days "
        f"(not after {iso(2 * DAY + 23 * 3600)}, critical below 7 days)"
    ]


# --- judged by the certificates, not by certbot's exit code ----------------------------

HOOK_FAILED = """Saving debug log to /var/log/letsencrypt/letsencrypt.log
Renewing an existing certificate for lab.opsplay.test
Hook '--deploy-hook' for lab.opsplay.test ran with error output:
 2026/11/30 12:00:00 [emerg] 1#1: unknown directive "this_is_not_an_nginx_directive"
 nginx: configuration file /etc/nginx/nginx.conf test failed
 'nginx -t' failed for /etc/letsencrypt/live/lab.opsplay.test: web server NOT reloaded, it keeps serving the old certificate
"""  # noqa: E501
ACME_DOWN = """Saving debug log to /var/log/letsencrypt/letsencrypt.log
Failed to renew certificate lab.opsplay.test with error: HTTPSConnectionPool(host='127.0.0.1', port=14000): Max retries exceeded (Connection refused)
All renewals failed. The following certificates could not be renewed:
  /etc/letsencrypt/live/lab.opsplay.test/fullchain.pem (failure)
Ask for help or search for solutions at https://community.letsencrypt.org.
"""  # noqa: E501


def test_what_certbot_said_is_the_hooks_error_or_certbots_error_lines():
    said = cr.what_was_said("renew", 0, HOOK_FAILED)
    assert said.startswith("certbot rc 0, its deploy hook failed: 2026/11/30")
    assert 'unknown directive "this_is_not_an_nginx_directive"' in said  # the hook's 3 lines
    assert said.endswith("web server NOT reloaded, it keeps serving the old certificate")
    said = cr.what_was_said("renew", 1, ACME_DOWN)
    assert said.startswith("certbot rc 1: Failed to renew certificate lab.opsplay.test with error:")
    assert "Ask for help" not in said and "Saving debug log" not in said
    assert (
        cr.what_was_said("redeploy", 1, "nginx -t failed\n") == "deploy hook rc 1: nginx -t failed"
    )
    assert cr.what_was_said("renew", 124, "") == "certbot rc 124"
    assert cr.what_was_said("redeploy", 0, "") == "deploy hook rc 0"


def test_a_renewal_that_left_the_old_serial_or_expiry_is_named_with_what_certbot_said():
    before = [lineage("a", DAY, serial="1"), lineage("b", DAY, serial="2"), lineage("c", DAY, "3")]
    after = [lineage("a", DAY, serial="1"), lineage("b", 90 * DAY, serial="22"),
             lineage("c", DAY, serial="33")]  # fmt: skip
    done = {"issue": [], "reissue": [], "renew": ["a", "b", "c"], "redeploy": []}
    found = cr.outcome_problems(params(), before, after, done, {"a": "certbot rc 1: refused"})
    assert found == [
        "lineage a was not renewed, the old certificate (serial 1) stays in place "
        "(certbot rc 1: refused)",
        # a new serial with the same not-after is not a renewal either
        "lineage c was not renewed, the old certificate (serial 3) stays in place "
        "(certbot did not run)",
    ]


def test_an_issue_without_a_lineage_and_a_reissue_without_the_new_names_are_named():
    done = {"issue": [want("new")], "reissue": [want("www", "www", "alt")], "renew": [],
            "redeploy": []}  # fmt: skip
    after = [lineage("www", 80 * DAY, sans=["DNS:www"])]
    said = {"new": "certbot rc 1: rate limited"}
    assert cr.outcome_problems(params(), [], after, done, said) == [
        f"certificate new was not issued by {DIRECTORY} (certbot rc 1: rate limited)",
        "certificate www was not reissued for www, alt, the lineage holds DNS:www "
        "(certbot did not run)",
    ]
    after = [lineage("new", 90 * DAY), lineage("www", 90 * DAY, sans=["DNS:alt", "DNS:www"])]
    assert cr.outcome_problems(params(), [], after, done, said) == []


def test_a_stale_endpoint_after_a_renewal_says_what_the_hook_said():
    records = [lineage("www.test", 90 * DAY, serial="NEW"), endpoint("www.test", serial="OLD")]
    said = {"www.test": cr.what_was_said("renew", 0, HOOK_FAILED)}
    (problem,) = cr.stale_problems(records, said)
    head = "endpoint 127.0.0.1:443 (SNI www.test) still serves serial OLD (not after "
    tail = ") but lineage www.test holds serial NEW: the new certificate is not served"
    expected = head + iso(80 * DAY) + tail
    assert problem.startswith(expected + " (certbot rc 0, its deploy hook failed: ")
    assert cr.stale_problems(records, {}) == [expected]


# --- certbot's command lines ----------------------------------------------------------

BASE = ["timeout", "300", "certbot", "--non-interactive", "--config-dir", "/etc/letsencrypt",
        "--deploy-hook", "/usr/local/sbin/opsplay-cert-deploy-hook",
        "--no-random-sleep-on-renew"]  # fmt: skip


def test_certbot_command_lines():
    assert cr.certbot_argv(params(), "renew", "www") == [
        *BASE, "renew", "--force-renewal", "--cert-name", "www"]  # fmt: skip
    assert cr.certbot_argv(params(acme_email="ops@x.test"), "issue", want("www", "www", "a")) == [
        *BASE, "certonly", "--agree-tos", "--server", DIRECTORY, "--cert-name", "www",
        "--email", "ops@x.test", "--no-eff-email", "--domain=www", "--domain=a",
        "--webroot", "--webroot-path", "/var/www/html"]  # fmt: skip
    argv = cr.certbot_argv(params(), "reissue", want("www", method="standalone"))
    # certbot replaces the lineage's names when --cert-name meets other --domain values
    assert argv[-4:] == ["www", "--register-unsafely-without-email", "--domain=www", "--standalone"]
    assert cr.certbot_argv(params(), "redeploy", "www") == [BASE[7]]
    assert cr.certbot_env(params(), "redeploy", "www") == {
        "RENEWED_LINEAGE": "/etc/letsencrypt/live/www", "RENEWED_DOMAINS": ""}  # fmt: skip
    assert cr.certbot_env(params(ca_bundle="/ca.pem"), "renew", "www") == {
        "REQUESTS_CA_BUNDLE": "/ca.pem"}  # fmt: skip
    assert cr.certbot_env(params(), "issue", want("www")) == {}


# --- bad input, the report and the summary --------------------------------------------


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"critical_days": 40}, "cert_renewal_critical_days (40) is above "
         "cert_renewal_warning_days (30)"),
        ({"acme_directory": " ", "certificates": [want("www")]}, "cert_renewal_acme_directory "
         "is empty: set the ACME directory URL to issue certificates"),
        ({"certificates": [want("a"), {"name": "b", "domains": []}]},
         "cert_renewal_certificates item 2 needs a name and a non-empty domains list"),
        ({"certificates": [{"name": "b", "domains": ["b"], "method": "dns"}]},
         "cert_renewal_certificates b: method must be webroot or standalone, not dns"),
        ({"certificates": [{"name": "b", "domains": ["b"]}]},
         "cert_renewal_certificates b: the webroot method needs a webroot directory"),
        ({"endpoints": [{"host": "a"}, {"port": 443}]},
         "cert_renewal_endpoints item 2 needs a host"),
    ],
)  # fmt: skip
def test_bad_input_is_one_message_per_value(over, message):
    assert cr.input_problems(params(**over)) == [message]


def test_good_input_and_cert_check_without_a_directory_pass():
    assert cr.input_problems(params(certificates=[want("a", method="standalone")])) == []
    assert cr.input_problems(params(renew=False, acme_directory="", certificates=[want("a")])) == []


def test_report_lines_and_summary():
    records = [lineage("www", 20 * DAY), broken("file", "/gone.pem", "No such file")]
    assert cr.report_lines(records) == [
        f"WARNING  lineage /etc/letsencrypt/live/www/cert.pem: 20.0 days left, not after "
        f"{iso(20 * DAY)}, subject CN=www, SANs DNS:www, issuer CN=Test CA, serial A1",
        "ERROR    file /gone.pem: No such file",
    ]
    assert cr.report_lines([]) == ["no certificates found or declared"]
    nothing = {"issue": [], "reissue": [], "renew": [], "redeploy": []}
    planned = dict(nothing, issue=[want("new")], renew=["www"])
    ok = [lineage("www", 20 * DAY)]
    assert cr.summary(ok, [], planned, nothing) == (
        "1 certificate(s) checked, 1 warning(s), none critical; "
        "would do (check mode): issued new, renewed www"
    )
    assert cr.summary(ok, [], planned, planned).endswith("; done: issued new, renewed www")
    assert cr.summary(ok, ["p1", "p2"], planned, planned) == "cert_renewal: 2 problem(s): p1; p2"
