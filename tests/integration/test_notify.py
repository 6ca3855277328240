"""A real run posts its summary to a webhook; a dead webhook changes nothing; the URL's token
is stored nowhere."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opsplay.errors import ExitCode

TOKEN = "hook-token-5d1e77"


def test_failed_run_notifies_and_dead_hook_keeps_exit_code(run_opsplay):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(
                (self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    args = (
        "run",
        "health",
        "--env",
        "lab",
        "--limit",
        "opsplay-lab-1",
        "-e",
        "health_disk_max_percent=0",
        "--notify-format",
        "slack",
    )
    try:
        url = f"http://127.0.0.1:{server.server_port}/services/{TOKEN}"
        proc = run_opsplay(*args, env={"OPSPLAY_NOTIFY_URL": url})
    finally:
        server.shutdown()
    assert proc.code == ExitCode.HOSTS_FAILED, proc.err
    ((path, body),) = received
    assert path == f"/services/{TOKEN}"
    assert "run health on lab: failed (exit 3)" in body["text"]
    host = body["opsplay"]["hosts"]["opsplay-lab-1"]
    assert host["failed_task"] == "Report health" and "disk /" in host["message"]

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/services/{TOKEN}"
    proc = run_opsplay(*args, "--notify-url", dead)
    assert proc.code == ExitCode.HOSTS_FAILED
    assert "notification to http://127.0.0.1 failed" in proc.err
    assert TOKEN not in proc.out + proc.err

    for path in run_opsplay.state.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
