#!/usr/bin/python3
"""Ansible module opsplay.ops.maintenance_mode_nginx:
the maintenance snippet and its includes, only with a passing nginx -t.

What it decides and does, its options and its results: maintenance_mode_nginx.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

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


def plan(snippet_path, snippet_content, sites, read):
    """(changes, problems): changes maps each path to its new bytes; read(path) -> bytes or None."""
    changes, problems = {}, []
    current = read(snippet_path)
    if current != snippet_content.encode():
        changes[snippet_path] = snippet_content.encode()
    for site in sites:
        text = read(site)
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


def main():
    module = AnsibleModule(
        argument_spec={
            "snippet_path": {"type": "path", "required": True},
            "snippet_content": {"type": "str", "required": True},
            "sites": {"type": "list", "elements": "path", "default": []},
            "test_command": {"type": "list", "elements": "str", "default": ["nginx", "-t"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    # Sites are often symlinks (sites-enabled -> sites-available): change the file itself.
    sites = [os.path.realpath(site) for site in params["sites"]]
    snippet = os.path.realpath(params["snippet_path"])
    changes, problems = plan(snippet, params["snippet_content"], sites, read_bytes)
    if problems:
        module.fail_json(msg="; ".join(problems))
    if not changes or module.check_mode:
        module.exit_json(changed=bool(changes), files=sorted(changes))

    saved = {path: snapshot(path) for path in changes}
    try:
        for path, data in changes.items():
            before = saved[path]
            mode, uid, gid = before[1:] if before else (0o644, 0, 0)
            write_bytes(path, data, mode, uid, gid)
        test = subprocess.run(
            params["test_command"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            universal_newlines=True,
            check=False,
        )
        failure = None
        if test.returncode != 0:
            failure = "nginx -t failed: %s" % nginx_error(test.stdout)
    except OSError as exc:
        failure = "writing the nginx files failed: %s" % exc
    if failure is None:
        module.exit_json(changed=True, files=sorted(changes))

    not_restored = []
    for path, before in saved.items():
        try:
            restore(path, before)
        except OSError as exc:
            not_restored.append("%s (%s)" % (path, exc.strerror or exc))
    if not_restored:
        module.fail_json(
            msg="%s; could NOT restore %s" % (failure, ", ".join(not_restored)),
            files=sorted(changes),
        )
    module.fail_json(
        msg="%s (%s left as they were)" % (failure, ", ".join(sorted(changes))),
        files=sorted(changes),
    )


if __name__ == "__main__":
    main()
