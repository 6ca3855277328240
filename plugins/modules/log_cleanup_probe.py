#!/usr/bin/python3
"""Ansible module: what the log_cleanup role deletes, decided on the host; changes nothing.

``phase: plan`` checks the declared entries (absolute directory other than /, without . or ..
components; patterns; age_days a whole number of days, at least 1) and refuses directories that
are, or lie under, a symlink (both: one line naming every problem, ``opsplay_bad_input``, before
anything is read), then lists the regular files inside the existing declared directories whose
names match a pattern and no exclude and whose mtime is at least age_days old (symlinks are
neither followed nor listed; missing directories are skipped), and measures the filesystems
(module_utils.disk_usage). The role removes ``batches`` with rm; ``phase: report`` measures the
filesystems again and words the summary. The deciding functions are unit-tested without a host
(tests/unit/test_log_cleanup_probe.py).
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.formatters import bytes_to_human
from ansible_collections.opsplay.ops.plugins.module_utils import disk_usage

BAD_PATH = "path '%s' must be an absolute directory other than / without . or .. components"


def normalise(entries, age_days):
    """Entries with defaults applied and the path without trailing slashes."""
    result = []
    for item in entries:
        entry = {"age_days": age_days, "recurse": False, "excludes": []}
        entry.update({key: value for key, value in item.items() if value is not None})
        path = str(entry.get("path") or "")
        entry["path"] = path.rstrip("/") or path[:1]
        result.append(entry)
    return result


def input_problems(entries):
    problems = []
    for entry in entries:
        path = entry["path"]
        wrapped = path + "/"
        if not path.startswith("/") or path == "/" or "/../" in wrapped or "/./" in wrapped:
            problems.append(BAD_PATH % path)
        if not entry.get("patterns"):
            problems.append("path '%s' has no patterns" % path)
        age = entry["age_days"]
        if not str(age).isdigit() or int(age) < 1:
            problems.append(
                "path '%s': age_days must be a whole number of days, at least 1 (got %s)"
                % (path, age)
            )
    return problems


def resolve(path):
    real = os.path.realpath(path)
    return {
        "exists": os.path.lexists(path),
        "isdir": os.path.isdir(path) and not os.path.islink(path),
        "real": real,
        "symlinked": real != os.path.normpath(path),
    }


def symlinked(dirs):
    """'DIR -> RESOLVED' for each declared directory that exists but resolves elsewhere."""
    return [
        "%s -> %s" % (path, found["real"])
        for path, found in dirs.items()
        if found["exists"] and found["symlinked"]
    ]


def globs(value):
    return [value] if isinstance(value, str) else list(value or [])


def selected(name, patterns, excludes):
    matches = any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    return matches and not any(fnmatch.fnmatchcase(name, pattern) for pattern in excludes)


def entry_files(entry):
    """(path, lstat) of every regular file in the entry's directory (and below, with recurse);
    symlinked subdirectories are not entered, symlinks never returned."""
    for root, _dirs, files in os.walk(entry["path"], followlinks=False):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield path, st
        if not entry["recurse"]:
            break


def candidates(entries, now):
    """{path, size} of the old matching regular files inside each entry's directory, once each,
    sorted by path."""
    found = {}
    for entry in entries:
        patterns, excludes = globs(entry["patterns"]), globs(entry["excludes"])
        oldest = now - int(entry["age_days"]) * 86400
        for path, st in entry_files(entry):
            inside = path.startswith(entry["path"] + "/") and "/../" not in path
            if (
                inside
                and st.st_mtime <= oldest
                and selected(os.path.basename(path), patterns, excludes)
            ):
                found[path] = st.st_size
    return [{"path": path, "size": found[path]} for path in sorted(found)]


def batches(paths, size):
    size = max(1, size)
    return [paths[start : start + size] for start in range(0, len(paths), size)]


def plan_message(count, size, paths, check_mode):
    verb = "would remove" if check_mode else "removing"
    return "%s %d file(s), %s (%d bytes): %s" % (
        verb,
        count,
        bytes_to_human(size),
        size,
        " ".join(paths),
    )


def summary(count, size, before, after, check_mode, paths=()):
    """'removed N file(s), freed H (B bytes); MOUNT: used H (P%) before, H (P%) after, H free';
    then the files."""
    lines = disk_usage.before_after(before, after)
    removed, freed = ("would remove", "would free") if check_mode else ("removed", "freed")
    text = "%s %d file(s), %s %s (%d bytes)" % (removed, count, freed, bytes_to_human(size), size)
    return "; ".join([text, *lines, *(["files: " + " ".join(paths)] if paths else [])])


def plan(params, check_mode):
    """(result, refusal): the plan, or one line naming every problem of the input."""
    entries = normalise(params["entries"], params["age_days"])
    problems = input_problems(entries)
    if problems:
        return None, "; ".join(problems)
    dirs = {}
    for entry in entries:
        dirs.setdefault(entry["path"], resolve(entry["path"]))
    refused = symlinked(dirs)
    if refused:
        return None, (
            "refusing to clean directories reached through a symlink (declare the real path): "
            + ", ".join(refused)
        )
    existing = [entry for entry in entries if dirs[entry["path"]]["isdir"]]
    found = candidates(existing, time.time())
    paths = [item["path"] for item in found]
    size = sum(item["size"] for item in found)
    disks = params["disk_paths"] or [path for path, seen in dirs.items() if seen["isdir"]]
    return {
        "msg": plan_message(len(found), size, paths, check_mode),
        "candidates": found,
        "batches": batches(paths, params["batch_size"]),
        "count": len(found),
        "bytes": size,
        "disk": disk_usage.filesystems(disks),
        "disk_paths": disks,
    }, None


def main():
    module = AnsibleModule(
        argument_spec={
            "phase": {"type": "str", "default": "plan", "choices": ["plan", "report"]},
            "entries": {"type": "list", "elements": "dict", "default": []},
            "age_days": {"type": "int", "default": 30},
            "disk_paths": {"type": "list", "elements": "str", "default": []},
            "batch_size": {"type": "int", "default": 500},
            "plan": {"type": "dict"},
        },
        required_if=[("phase", "report", ["plan"])],
        supports_check_mode=True,
    )
    params = module.params
    if params["phase"] == "report":
        done = params["plan"]
        after = disk_usage.filesystems(done.get("disk_paths") or [])
        paths = [item["path"] for item in done.get("candidates") or []]
        msg = summary(done["count"], done["bytes"], done["disk"], after, module.check_mode, paths)
        module.exit_json(changed=False, msg=msg, disk=after)
    result, refusal = plan(params, module.check_mode)
    if refusal:
        module.fail_json(msg=refusal, opsplay_bad_input=True)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
