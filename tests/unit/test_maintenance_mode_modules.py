"""The maintenance_mode role's decisions (plugins/modules/maintenance_mode_*.py): which window to
open, close or recover, where the include goes, and what the site must answer."""

import importlib.util
import json
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import (
    maintenance_deadman as deadman,
)
from ansible_collections.opsplay.ops.plugins.module_utils import (
    maintenance_nginx,
    maintenance_probe,
)

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
    assert deadman.end_outcome("ok", WEEKLY, "r2", False, True) == "abandoned"
    assert deadman.end_outcome("cancelled", WEEKLY, "r2", False, True) == "cancelled"
    assert deadman.end_outcome("ok", WEEKLY, "r2", False, False) == "ok"
    assert deadman.end_outcome("ok", BY_HAND, "r2", False, True) == "ok"
    assert deadman.end_outcome("failed", WEEKLY, "r1", True, True) == "failed"


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


# The one-call window (issue 19): module_utils maintenance_probe and maintenance_nginx, and the
# kill-safe order of the window module's writes.


def answering(table):
    return lambda url, timeout: table[url]


def test_baseline_records_the_site_and_each_health_location_and_needs_a_site_answer():
    table = {"http://h/": 200, "http://h/health": 404}
    before, problem = maintenance_probe.baseline("http://h/", ["/health"], 5, get=answering(table))
    assert (before, problem) == ({"site": 200, "health": {"/health": 404}}, None)
    table["http://h/"] = "no answer (refused)"
    _before, problem = maintenance_probe.baseline("http://h/", ["/health"], 5, answering(table))
    assert problem == "site http://h/ gave no answer (refused)"


def test_prove_asks_again_until_the_answers_are_right():
    answers = iter([200, 200, 503])
    sleeps = []
    got, problem = maintenance_probe.prove(
        "http://h/", [], "on", {}, 60, 5, get=lambda url, t: next(answers), sleep=sleeps.append
    )
    assert (got, problem) == ({"site": 503}, None) and len(sleeps) == 2


def test_prove_names_what_answered_what_once_the_wait_is_over():
    table = {"http://h/": 503, "http://h/health": 503}
    before = {"site": 200, "health": {"/health": 200}}
    _got, problem = maintenance_probe.prove(
        "http://h/", ["/health"], "on", before, 0, 5, get=answering(table), sleep=None
    )
    assert problem == "maintenance mode not on: http://h/health answered 503, expected 200"
    _got, problem = maintenance_probe.prove(
        "http://h/", [], "off", before, 0, 5, get=answering(table), sleep=None
    )
    assert problem == "maintenance mode not off: http://h/ answered 503, expected 200"


def test_health_locations_must_be_paths():
    assert maintenance_probe.bad_health_paths(["/health", "/x"]) is None
    assert maintenance_probe.bad_health_paths(["/health", "health", "x/"]) == (
        "maintenance_mode_health_locations must be URL paths starting with / (got health, x/)"
    )


def test_plan_installs_the_page_with_the_snippet_and_names_unreadable_paths(tmp_path):
    files = {"/s.conf": b"snippet", "/site": b"server {\n}\n", "/page.html": b"old"}
    changes, problems = nginx.plan("/s.conf", "snippet", ["/site"], files.get, "/page.html", "new")
    assert sorted(changes) == ["/page.html", "/site"] and changes["/page.html"] == b"new"
    assert problems == []
    folder = tmp_path / "snippet-dir"
    folder.mkdir()
    changes, problems = maintenance_nginx.plan(str(folder), "x", [], maintenance_nginx.read_bytes)
    assert changes == {} and problems == [f"cannot read {folder}: Is a directory"]


def test_apply_keeps_files_with_a_passing_test_and_puts_them_back_otherwise(tmp_path):
    kept, new = tmp_path / "kept.conf", tmp_path / "new.conf"
    kept.write_bytes(b"old")
    changes = {str(kept): b"changed", str(new): b"created"}
    assert maintenance_nginx.apply(changes, ["true"]) is None
    assert kept.read_bytes() == b"changed" and new.read_bytes() == b"created"
    new.unlink()
    kept.write_bytes(b"old")
    refuse = ["sh", "-c", "echo 'nginx: [emerg] unknown directive \"x\" in /etc/a:1' >&2; exit 1"]
    failure = maintenance_nginx.apply(changes, refuse)
    left = f"({kept}, {new} left as they were)"
    assert failure == f'nginx -t failed: unknown directive "x" in /etc/a:1 {left}'
    assert kept.read_bytes() == b"old" and not new.exists()


def test_diff_shows_each_file_before_and_after():
    shown = maintenance_nginx.diff({"/b": b"new", "/a": b"x"}, {"/b": b"old"}.get)
    assert [(d["before_header"], d["before"], d["after"]) for d in shown] == [
        ("/a", "", "x"),
        ("/b", "old", "new"),
    ]


PARAMS = {"env": "lab", "actor": "me", "reason": "weekly maintenance", "run_id": "r2",
          "scheduled": True, "exclusive": True, "outcome": "ok"}  # fmt: skip


def test_open_logs_the_start_before_it_writes_the_flag(tmp_path, monkeypatch):
    p = dict(PARAMS, flag_path=str(tmp_path / "d" / "flag"), log_path=str(tmp_path / "log"))

    def killed(path, entry):
        raise KeyboardInterrupt  # killed between the two writes

    monkeypatch.setattr(window, "write_flag", killed)
    with pytest.raises(KeyboardInterrupt):
        window.open_window(p, {"site": 200})
    logged = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert [e["event"] for e in logged] == ["start"] and logged[0]["before"] == {"site": 200}
    assert (tmp_path / "d").is_dir()  # the flag's directory is made


def test_close_removes_the_flag_before_it_logs_the_end(tmp_path):
    flag, log = tmp_path / "flag", tmp_path / "log"
    flag.write_text(json.dumps(WEEKLY))
    log.mkdir()  # the log cannot be written: the site must answer again all the same
    p = dict(PARAMS, flag_path=str(flag), log_path=str(log))
    with pytest.raises(OSError):
        window.close(p, WEEKLY, "close_abandoned")
    assert not flag.exists()


def test_end_entries_say_abandoned_failed_or_the_outcome_and_who_closed():
    entry = deadman.end_entry(PARAMS, WEEKLY, "close_abandoned", None)
    assert entry["outcome"] == "abandoned" and entry["reason"] == "weekly maintenance"
    assert entry["run_id"] == "r1" and entry["closed_by_run_id"] == "r2"
    assert entry["started"] == WEEKLY["time"]
    own = dict(WEEKLY, run_id="r2")
    assert deadman.end_entry(PARAMS, own, "close", "failed")["outcome"] == "failed"
    ok = deadman.end_entry(PARAMS, own, "close", None)
    assert ok["outcome"] == "ok" and "closed_by_run_id" not in ok
