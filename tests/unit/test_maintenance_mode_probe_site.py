"""plugins/modules/maintenance_mode_probe.py main() in this process against a real HTTP server
on 127.0.0.1 that behaves as nginx with the maintenance snippet: the site answers 503 while the
flag file exists, the health locations keep answering. What is recorded before the window, and
what proves it on and off (or fails naming what answered what). molecule/maintenance_mode
proves the real nginx."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.modules import maintenance_mode_probe as probe

from .module_harness import run_main


class Site:
    """GET / -> 200 (503 while ``flag`` exists), /health -> ``health`` (503 while the flag
    exists and ``catch_all``), /old -> 302 to /."""

    def __init__(self, flag: Path):
        self.flag, self.health, self.catch_all = flag, 200, False
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                on = site.flag.exists()
                if self.path == "/old":
                    self.send_response(302)
                    self.send_header("Location", "/")
                elif self.path == "/health":
                    self.send_response(503 if on and site.catch_all else site.health)
                else:
                    self.send_response(503 if on else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(tmp_path):
    running = Site(tmp_path / "maintenance.flag")
    yield running
    running.close()


BEFORE = {"site": 200, "health": {"/health": 200}}


def test_the_baseline_records_what_the_site_and_health_locations_answer(site):
    rc, result = run_main(
        probe, {"site_url": site.url, "health_paths": ["/health"], "expect": "baseline"}
    )
    assert rc == 0, result
    assert result["changed"] is False
    assert result["site"] == 200 and result["health"] == {"/health": 200}


def test_a_redirect_is_recorded_not_followed(site):
    rc, result = run_main(probe, {"site_url": site.url + "old", "expect": "baseline"})
    assert rc == 0 and result["site"] == 302


def test_a_site_that_does_not_answer_fails_the_baseline(site):
    url = site.url
    site.close()
    rc, result = run_main(probe, {"site_url": url, "expect": "baseline", "timeout": 2})
    assert rc == 1
    assert result["msg"].startswith(f"site {url} gave no answer (")


def prove(site, expect, **kw):
    args = {"site_url": site.url, "health_paths": ["/health"], "expect": expect, "wait": 0}
    return run_main(probe, {**args, "before": BEFORE, **kw})


def test_the_window_is_proven_on_and_off(site):
    site.flag.write_text("{}")
    rc, result = prove(site, "on")
    assert rc == 0, result
    assert result["answers"] == {"site": 503, "/health": 200}
    site.flag.unlink()
    rc, result = prove(site, "off")
    assert rc == 0 and result["answers"] == {"site": 200}


def test_no_503_means_not_on_and_a_503_means_not_off(site):
    rc, result = prove(site, "on")
    assert rc == 1
    assert result["msg"] == f"maintenance mode not on: {site.url} answered 200, expected 503"
    site.flag.write_text("{}")
    rc, result = prove(site, "off")
    assert rc == 1
    assert result["msg"] == f"maintenance mode not off: {site.url} answered 503, expected 200"
    assert result["answers"] == {"site": 503}


def test_health_locations_must_keep_answering_as_before(site):
    site.flag.write_text("{}")
    site.catch_all = True  # a snippet that sends the health location to 503 as well
    rc, result = prove(site, "on")
    assert rc == 1
    assert result["msg"] == (
        f"maintenance mode not on: {site.url}health answered 503, expected 200"
    )


def test_a_health_location_that_answered_503_before_needs_anything_but_503(site):
    site.flag.write_text("{}")
    site.health = 404
    before = {"site": 200, "health": {"/health": 503}}
    rc, result = prove(site, "on", before=before)
    assert rc == 0, result  # 404 now: not 503 is all that can be asked
    rc, result = prove(site, "off", before={})
    assert rc == 1 and result["msg"].endswith("answered 503, expected anything but 503")


def test_the_proof_asks_again_until_the_reload_took_effect(site):
    """The flag appears half a second after the proof starts (nginx's new workers)."""
    timer = threading.Timer(0.5, site.flag.write_text, args=("{}",))
    timer.start()
    try:
        rc, result = prove(site, "on", wait=30)
    finally:
        timer.join()
    assert rc == 0, result
    assert result["answers"]["site"] == 503
