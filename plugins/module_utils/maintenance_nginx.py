"""The maintenance_mode role's files on the host: the maintenance page, the nginx snippet and
its includes in the sites, changed together and only with a passing ``nginx -t``.

``plan`` says which files change (pure: a reader is passed in); ``apply`` writes them, runs the
test, and on failure puts every file back as it was (or removes it when it did not exist), so a
configuration nginx refuses is never installed or left on the host.

Standard library only: this file is shipped to the host with the module that imports it.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

SERVER = re.compile(r"^\s*server\s*\{")


def include_line(snippet_path):
    return "    include %s;" % snippet_path


def with_include(text, snippet_path):
    """The site's text with the include in its first server block, or None (no server block).

    An existing include of the snippet (any spacing) is kept as it is.
    """
    wanted = re.compile(r"^\s*include\s+%s\s*;" % re.escape(snippet_path))
    lines = text.splitlines(True)
    if any(wanted.match(line) for line in lines):
        return text
    for index, line in enumerate(lines):
        if SERVER.match(line):
            if not line.endswith("\n"):
                lines[index] = line + "\n"
            lines.insert(index + 1, include_line(snippet_path) + "\n")
            return "".join(lines)
    return None


def plan(snippet_path, snippet_content, sites, read, page_path=None, page_content=None):
    """(changes, problems): changes maps each path to its new bytes; read(path) -> bytes or None.

    The page (when given) and the snippet are wanted as given; each site gets the include."""
    changes, problems = {}, []

    def readable(path):
        try:
            return read(path)
        except OSError as exc:  # a directory, no permission: named, never a traceback
            problems.append("cannot read %s: %s" % (path, exc.strerror or exc))
            return False

    wanted = {snippet_path: snippet_content}
    if page_path:
        wanted[page_path] = page_content or ""
    for path, content in wanted.items():
        current = readable(path)
        if current is not False and current != content.encode():
            changes[path] = content.encode()
    for site in sites:
        text = readable(site)
        if text is False:
            continue
        if text is None:
            problems.append("nginx site %s does not exist" % site)
            continue
        new = with_include(text.decode(), snippet_path)
        if new is None:
            problems.append("nginx site %s has no 'server {' line to include the snippet in" % site)
        elif new.encode() != text:
            changes[site] = new.encode()
    return changes, problems


def nginx_error(output):
    """nginx -t's own error, one line: its [emerg]/[alert]/[crit] lines, else its last line."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\[(emerg|alert|crit)\]", line)]
    chosen = errors or lines[-1:] or ["no output"]
    # "nginx: [emerg] MSG" on a terminal, "2026/11/30 09:34:31 [emerg] 6026#6026: MSG" otherwise
    prefix = r"^(nginx: |\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(\[\w+\] )?(\d+#\d+: )?"
    return "; ".join(re.sub(prefix, "", line) for line in chosen)


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_bytes(path, data, mode, uid, gid):
    """Replace path's content atomically (a temporary file in its directory, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".opsplay-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def snapshot(path):
    """What restoring ``path`` needs: (bytes, mode, uid, gid), or None when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return read_bytes(path), st.st_mode & 0o7777, st.st_uid, st.st_gid


def restore(path, saved):
    if saved is None:
        if os.path.lexists(path):
            os.unlink(path)
    else:
        write_bytes(path, *saved)


def run_test(command):
    """None when ``command`` (nginx -t) passes, else the one line naming nginx's error."""
    test = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        check=False,
    )
    if test.returncode != 0:
        return "nginx -t failed: %s" % nginx_error(test.stdout)
    return None


def apply(changes, test_command):
    """Write ``changes`` ({path: bytes}), then run ``test_command``; None when it passes.

    Otherwise every file is put back as it was and the one-line failure says so: '... (FILES
    left as they were)', or '...; could NOT restore FILE (REASON)'. New files are 0644 root."""
    saved = {path: snapshot(path) for path in changes}
    try:
        for path, data in changes.items():
            before = saved[path]
            mode, uid, gid = before[1:] if before else (0o644, 0, 0)
            write_bytes(path, data, mode, uid, gid)
        failure = run_test(test_command)
    except OSError as exc:
        failure = "writing the nginx files failed: %s" % exc
    if failure is None:
        return None
    not_restored = []
    for path, before in saved.items():
        try:
            restore(path, before)
        except OSError as exc:
            not_restored.append("%s (%s)" % (path, exc.strerror or exc))
    if not_restored:
        return "%s; could NOT restore %s" % (failure, ", ".join(not_restored))
    return "%s (%s left as they were)" % (failure, ", ".join(sorted(changes)))


def diff(changes, read):
    """Ansible's diff of ``changes``: one before/after per file."""
    return [
        {
            "before_header": path,
            "after_header": path,
            "before": (read(path) or b"").decode("utf-8", "replace"),
            "after": data.decode("utf-8", "replace"),
        }
        for path, data in sorted(changes.items())
    ]
