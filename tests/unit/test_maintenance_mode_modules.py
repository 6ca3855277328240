"""The maintenance_mode role's decisions (plugins/modules/maintenance_mode_*.py): which window to
open, close or recover, where the include goes, and what the site must answer."""

import importlib.util
from pathlib import Path

LIBRARY = Path(__file__).parents[2] / "plugins" / "modules"


def load(name):
    spec = importlib.util.spec_from_file_location(name, LIBRARY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


window = load("maintenance_mode_window")
nginx = load("maintenance_mode_nginx")
probe = load("maintenance_mode_probe")

CLOSE = "opsplay maintenance-mode off --env prod"
WEEKLY = {"time": "2026-11-30T02:00:41Z", "run_id": "r1", "reason": "weekly maintenance",
          "scheduled": True}  # fmt: skip
BY_HAND = {"time": "2026-11-30T01:00:00Z", "run_id": "r0", "reason": "manual", "scheduled": False}


def plan(state, found, run_id="r2", scheduled=False, exclusive=False):
    return window.plan(state, found, run_id, scheduled, exclusive, CLOSE)


def test_a_scheduled_window_of_a_run_that_is_gone_is_closed_only_under_the_lock():
    assert plan("recover", WEEKLY, exclusive=True) == ("close_abandoned", "")
    action, message = plan("recover", WEEKLY, exclusive=False)
    assert action == "fail"
    assert message.startswith(
        "in maintenance mode since 2026-11-30T02:00:41Z (run r1, weekly maintenance)"
    )
    assert message.endswith("close it with `opsplay maintenance-mode off --env prod`")
    # by hand `on` recovers the same way
    assert plan("open", WEEKLY, exclusive=True) == ("close_abandoned", "")


def test_a_window_by_hand_is_never_taken_for_abandoned():
    assert plan("recover", BY_HAND, exclusive=True) == ("none", "")
    assert plan("open", BY_HAND, exclusive=True) == ("none", "")  # second `on`: nothing
    action, message = plan("open", BY_HAND, scheduled=True, exclusive=True)
    assert action == "fail" and "turned on by hand" in message and CLOSE in message
    # the schedule's `always:` does not close it either
    assert plan("close", BY_HAND, scheduled=True, exclusive=True) == ("none", "")


def test_this_runs_own_window_is_left_to_it_and_closed_by_it():
    assert plan("recover", WEEKLY, run_id="r1", exclusive=True) == ("none", "")
    assert plan("open", WEEKLY, run_id="r1", scheduled=True) == ("none", "")
    assert plan("close", WEEKLY, run_id="r1", scheduled=True) == ("close", "")
    assert plan("close", WEEKLY, run_id="r2", scheduled=True) == ("none", "")
    # a plain ansible-playbook run has no run ID: its own window has none either
    plain = dict(WEEKLY, run_id="")
    assert plan("close", plain, run_id="", scheduled=True) == ("close", "")
    assert plan("recover", plain, run_id="", exclusive=False)[0] == "fail"


def test_no_flag_opens_and_closes_nothing():
    assert plan("open", None) == ("open", "")
    for state in ("recover", "close", "read"):
        assert plan(state, None) == ("none", "")


def test_older_flags_count_as_scheduled_by_their_reason():
    old = {"time": "2026-11-01T02:00:00Z", "event": "start", "reason": "monthly maintenance"}
    assert window.is_scheduled(old)
    assert not window.is_scheduled({"reason": "manual"})
    assert plan("recover", old, exclusive=True) == ("close_abandoned", "")


def test_closing_another_runs_scheduled_window_by_hand_under_the_lock_is_abandoned():
    assert window.end_outcome("ok", WEEKLY, "r2", False, True) == "abandoned"
    assert window.end_outcome("cancelled", WEEKLY, "r2", False, True) == "cancelled"
    assert window.end_outcome("ok", WEEKLY, "r2", False, False) == "ok"
    assert window.end_outcome("ok", BY_HAND, "r2", False, True) == "ok"
    assert window.end_outcome("failed", WEEKLY, "r1", True, True) == "failed"


SITE = """server {
\tlisten 80 default_server;
\tlocation / { try_files $uri $uri/ =404; }
}
server {
\tlisten 81;
}
"""


def test_the_include_goes_into_the_first_server_block_once():
    path = "/etc/nginx/snippets/opsplay-maintenance.conf"
    new = nginx.with_include(SITE, path)
    lines = new.splitlines()
    assert lines[1] == f"    include {path};" and new.count("include") == 1
    assert nginx.with_include(new, path) == new
    spaced = SITE.replace("server {\n", f"server {{\n  include   {path} ;\n", 1)
    assert nginx.with_include(spaced, path) == spaced  # any spacing counts as present
    assert nginx.with_include("# no server here\n", path) is None


def test_plan_names_sites_it_cannot_change_and_changes_only_what_differs():
    files = {"/s/snippet": b"same", "/s/site": SITE.encode()}
    changes, problems = nginx.plan("/s/snippet", "same", ["/s/site", "/s/gone"], files.get)
    assert list(changes) == ["/s/site"]
    assert problems == ["nginx site /s/gone does not exist"]
    changes, problems = nginx.plan("/s/new", "x", [], files.get)
    assert changes == {"/s/new": b"x"} and problems == []


def test_nginx_error_is_its_emerg_line():
    output = (
        'nginx: [emerg] unknown directive "bad" in /etc/nginx/conf.d/x.conf:1\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n"
    )
    assert nginx.nginx_error(output) == 'unknown directive "bad" in /etc/nginx/conf.d/x.conf:1'
    assert nginx.nginx_error("") == "no output"
    logged = '2026/11/30 09:34:31 [emerg] 6026#6026: unknown directive "bad" in /x.conf:1\n'
    assert nginx.nginx_error(logged) == 'unknown directive "bad" in /x.conf:1'


def test_on_wants_503_and_the_health_locations_as_before():
    before = {"site": 200, "health": {"/health": 200, "/ready": 404, "/down": 503}}
    rules = probe.expected("on", before, ["/health", "/ready", "/down", "/new"])
    assert rules == {"site": 503, "/health": 200, "/ready": 404, "/down": "not 503",
                     "/new": "not 503"}  # fmt: skip
    urls = dict(probe.health_urls("http://127.0.0.1/", ["/health"]), site="http://127.0.0.1/")
    assert urls["/health"] == "http://127.0.0.1/health"
    found = probe.mismatches({"site": 503, "/health": 200}, {"site": 200, "/health": 503}, urls)
    assert found == [
        "http://127.0.0.1/ answered 200, expected 503",
        "http://127.0.0.1/health answered 503, expected 200",
    ]


def test_off_wants_the_site_as_before_or_at_least_no_503():
    assert probe.expected("off", {"site": 301}, []) == {"site": 301}
    assert probe.expected("off", {}, []) == {"site": "not 503"}
    urls = {"site": "http://h/"}
    assert probe.mismatches({"site": "not 503"}, {"site": 503}, urls) == [
        "http://h/ answered 503, expected anything but 503"
    ]
    assert probe.mismatches({"site": "not 503"}, {"site": "no answer (refused)"}, urls) == [
        "http://h/ no answer (refused), expected anything but 503"
    ]
