"""What the Molecule verify plays read on the instance, in one task instead of one per item.

Run on the instance by ansible.builtin.script (executable python3) with one argument, a JSON
object of lists (each key optional); prints one JSON object:
  url: [PATH]     urls[PATH]   = {status, retry_after, content} of GET http://127.0.0.1PATH
  file: [PATH]    files[PATH]  = the file's text, or null when it does not exist
  sha256: [PATH]  sha256[PATH] = {exists, islnk, checksum (of the target, null when absent)}
  run: [CMD]      runs[CMD]    = {rc, stdout} of `sh -c CMD`, in the order given
Redirects are not followed and an error status is an answer, as for ansible.builtin.uri.
"""

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch(path: str) -> dict[str, object]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        answer = opener.open("http://127.0.0.1" + path, timeout=10)
        status = answer.status
    except urllib.error.HTTPError as exc:
        answer, status = exc, exc.code
    return {
        "status": status,
        "retry_after": answer.headers.get("Retry-After", ""),
        "content": answer.read().decode("utf-8", "replace"),
    }


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def sha256(path: str) -> dict[str, object]:
    found: dict[str, object] = {
        "exists": os.path.lexists(path),
        "islnk": os.path.islink(path),
        "checksum": None,
    }
    if os.path.exists(path):
        with open(path, "rb") as handle:
            found["checksum"] = hashlib.sha256(handle.read()).hexdigest()
    return found


def run(cmd: str) -> dict[str, object]:
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=False)
    return {"rc": done.returncode, "stdout": done.stdout}


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(
        json.dumps(
            {
                "urls": {path: fetch(path) for path in spec.get("url", [])},
                "files": {path: read(path) for path in spec.get("file", [])},
                "sha256": {path: sha256(path) for path in spec.get("sha256", [])},
                "runs": {cmd: run(cmd) for cmd in spec.get("run", [])},
            }
        )
    )


main()
