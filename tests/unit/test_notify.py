from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opsplay.notify import payload, redact, send, should_notify
from opsplay.state import RunRecord


def record(exit_code=3):
    return RunRecord(
        id="r1",
        env="prod",
        what="maintenance weekly",
        check=False,
        started=0.0,
        status="failed",
        exit_code=exit_code,
        artifacts="/state/runs/r1",
        hosts={
            "db1": {
                "ok": 1,
                "changed": 0,
                "failed": 1,
                "unreachable": 0,
                "skipped": 0,
                "duration": 1.0,
                "message": "disk / 95% > 90%",
                "failed_task": "Report health",
            }
        },
    )


def test_when():
    assert should_notify(record(3), "failure") and should_notify(record(0), "always")
    assert not should_notify(record(0), "failure")


def test_slack_payload_names_failures():
    body = payload(record(), "slack")
    assert body["text"].startswith("opsplay maintenance weekly on prod: failed (exit 3)")
    assert "- db1: disk / 95% > 90%" in body["text"]
    assert body["opsplay"]["hosts"]["db1"]["failed_task"] == "Report health"
    assert "artifacts" not in payload(record(), "json")


def test_redact_drops_path_and_query():
    assert redact("https://hooks.example.com/services/T0/B0/tok3n?x=1") == (
        "https://hooks.example.com"
    )


def test_send_posts_json_and_survives_a_dead_webhook(capsys):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.handle_request, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook/s3cret-token"
    assert send(url, record(), "json")
    assert received[0]["env"] == "prod" and received[0]["exit_code"] == 3
    server.server_close()

    assert not send(url, record(), "json", timeout=2)  # nobody listens any more
    err = capsys.readouterr().err
    assert "notification to http://127.0.0.1 failed" in err
    assert "s3cret-token" not in err
