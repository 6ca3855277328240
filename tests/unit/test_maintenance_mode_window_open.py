"""plugins/modules/maintenance_mode_window.py opening and closing a window in one call (state
install, open, close with a site to prove), main() in this process: a real nginx tree in
tmp_path, a real HTTP server that answers 503 while the flag file exists (what nginx does with
the snippet), a recorded reload command. Nothing failing the configuration test stays
installed, a window the site does not prove is closed again, check mode touches nothing.

nginx -t is the stand-in of test_maintenance_mode_nginx_install.py, the site the one of
test_maintenance_mode_probe_site.py; molecule/maintenance_mode proves the real nginx.
"""

from __future__ import annotations

import json
import sys

import pytest
from ansible_collections.opsplay.ops.plugins.modules import maintenance_mode_window as mw

from .module_harness import run_main
from .test_maintenance_mode_nginx_install import SNIPPET, Tree
from .test_maintenance_mode_probe_site import Site

PAGE = "<h1>Back soon</h1>\n"


class Web:
    """The tree, the site serving by the flag, the reload log."""

    def __init__(self, base):
        self.tree = Tree(base)
        self.flag = base / "lib" / "maintenance.flag"
        self.log = base / "maintenance.log"
        self.reloads = base / "reloads"
        self.site = Site(self.flag)
        self.page = base / "www" / "maintenance" / "index.html"

    def args(self, state, **kw):
        reload = [sys.executable, "-c", f"open({str(self.reloads)!r}, 'a').write('reload\\n')"]
        base = {
            "state": state,
            "flag_path": str(self.flag),
            "log_path": str(self.log),
            "run_id": "r1",
            "scheduled": True,
            "reason": "weekly maintenance",
            "page_path": str(self.page),
            "page_content": PAGE,
            "site_url": self.site.url,
            "health_paths": ["/health"],
            "wait": 0,
            **{k: v for k, v in self.tree.args().items() if k != "sites"},
            "sites": [str(self.tree.enabled)],
            "reload_command": reload,
            "systemctl": [sys.executable, "-c", "pass"],  # no timer of this machine touched
        }
        return {**base, **kw}

    def reload_count(self):
        return len(self.reloads.read_text().splitlines()) if self.reloads.exists() else 0

    def entries(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def web(tmp_path):
    running = Web(tmp_path)
    yield running
    running.site.close()


def test_open_installs_records_opens_and_proves_the_window(web):
    rc, result = run_main(
        mw,
        web.args("open"),
    )
    assert rc == 0, result
    assert result["changed"] is True and result["action"] == "open"
    assert web.page.read_text() == PAGE and web.tree.snippet.read_text() == SNIPPET
    assert f"include {web.tree.snippet};" in web.tree.site.read_text()
    assert result["reloaded"] is True and web.reload_count() == 1
    flag = json.loads(web.flag.read_text())
    assert flag["before"] == {"site": 200, "health": {"/health": 200}}
    assert flag["run_id"] == "r1" and flag["scheduled"] is True
    assert web.entries() == [flag]  # logged first, then the flag
    assert result["answers"] == {"site": 503, "/health": 200}
    # the same call again: this run's window is on, nothing to install, proven again
    rc, again = run_main(mw, web.args("open"))
    assert rc == 0 and again["changed"] is False and web.reload_count() == 1
    assert len(web.entries()) == 1


def test_a_window_the_site_does_not_prove_is_closed_again(web, tmp_path):
    web.site.flag = tmp_path / "elsewhere.flag"  # nginx looks for another flag: never 503
    rc, result = run_main(mw, web.args("open"))
    assert rc == 1
    assert result["msg"] == f"maintenance mode not on: {web.site.url} answered 200, expected 503"
    assert not web.flag.exists()
    start, end = web.entries()
    assert start["event"] == "start" and end["event"] == "end" and end["outcome"] == "failed"
    assert result["closed"]["outcome"] == "failed"


def test_a_configuration_failing_the_test_opens_nothing(web):
    before = web.tree.state()
    rc, result = run_main(mw, web.args("open", snippet_content="retrun 503;\n"))
    assert rc == 1
    assert result["msg"].startswith('nginx -t failed: unknown directive "retrun" in ')
    assert web.tree.state() == before and not web.page.exists()
    assert not web.flag.exists() and web.entries() == [] and web.reload_count() == 0


def test_a_failing_reload_is_one_line_and_opens_nothing(web):
    fail = [sys.executable, "-c", "import sys; sys.stderr.write('Job failed.\\n'); sys.exit(1)"]
    rc, result = run_main(mw, web.args("open", reload_command=fail))
    assert rc == 1
    assert result["msg"] == f"reloading nginx failed ({' '.join(fail)}): Job failed."
    assert not web.flag.exists()


def test_open_in_check_mode_touches_nothing(web):
    before = web.tree.state()
    rc, result = run_main(mw, {**web.args("open"), "_ansible_diff": True}, check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert web.tree.state() == before and not web.flag.exists() and web.reload_count() == 0
    flag_diff = [d for d in result["diff"] if d["after_header"] == str(web.flag)]
    assert flag_diff and json.loads(flag_diff[0]["after"])["event"] == "start"
    # this run's window already on: check mode fetches nothing, so proves nothing either
    web.flag.parent.mkdir(parents=True, exist_ok=True)
    web.flag.write_text(json.dumps({"run_id": "r1", "scheduled": True, "time": "x"}))
    web.site.close()  # nobody answers now
    rc, result = run_main(mw, web.args("open", snippet_path=""), check_mode=True)
    assert rc == 0 and result["changed"] is False and "answers" not in result


def test_open_takes_over_from_a_gone_runs_window_under_the_lock(web):
    old = {"time": "2026-11-29T02:00:00Z", "run_id": "r0", "reason": "weekly maintenance",
           "scheduled": True, "before": {"site": 200, "health": {"/health": 200}}}  # fmt: skip
    web.flag.parent.mkdir(parents=True, exist_ok=True)
    web.flag.write_text(json.dumps(old))
    rc, result = run_main(mw, web.args("open", exclusive=True))
    assert rc == 0, result
    assert result["abandoned"] == old
    end, start = web.entries()
    assert end["outcome"] == "abandoned" and end["run_id"] == "r0"
    assert start["run_id"] == "r1" and json.loads(web.flag.read_text())["run_id"] == "r1"


def test_close_removes_the_flag_then_proves_the_site_answers_as_before(web):
    assert run_main(mw, web.args("open"))[0] == 0
    rc, result = run_main(mw, web.args("close"))
    assert rc == 0, result
    assert not web.flag.exists() and result["answers"] == {"site": 200}
    assert web.entries()[-1]["outcome"] == "ok"
    assert web.reload_count() == 1  # closing reloads nothing


def test_a_site_still_in_maintenance_after_close_fails_but_the_window_is_closed(web, tmp_path):
    assert run_main(mw, web.args("open"))[0] == 0
    stuck = tmp_path / "stuck.flag"
    stuck.write_text("{}")
    web.site.flag = stuck  # another flag keeps the site at 503
    rc, result = run_main(mw, web.args("close"))
    assert rc == 1
    assert result["msg"] == f"maintenance mode not off: {web.site.url} answered 503, expected 200"
    assert not web.flag.exists() and web.entries()[-1]["event"] == "end"


def test_install_alone_and_health_locations_that_are_not_paths(web):
    rc, result = run_main(mw, web.args("install"))
    assert rc == 0 and result["changed"] is True and web.reload_count() == 1
    assert not web.flag.exists()
    rc, result = run_main(mw, web.args("install", health_paths=["health", "/ok"]))
    assert rc == 1
    assert result["msg"] == (
        "maintenance_mode_health_locations must be URL paths starting with / (got health)"
    )
