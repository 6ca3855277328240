#!/usr/bin/python3
"""Ansible module opsplay.ops.security_updates_apt:
the apt side of roles/security_updates, on the managed host.

What it decides and does, its options and its results: security_updates_apt.yml beside it
(sidecar documentation, read by ansible-doc; never shipped to the host).
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils import timestamps

DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
LISTS_LOCK = "/var/lib/apt/lists/lock"
DPKG_UPDATES = "/var/lib/dpkg/updates"
REBOOT_REQUIRED = "/var/run/reboot-required"
# Mapped files under these prefixes that were replaced on disk mean the process runs old code.
LIBRARY_PREFIXES = ("/usr/", "/lib", "/bin/", "/sbin/", "/opt/")
UNIT = re.compile(r"/([^/]+\.service)(?:/|$)", re.MULTILINE)
# The current UTC time for the window's end (unit tests replace it: no sleeping).
clock = timestamps.now


class WindowEnded(Exception):
    """The maintenance window ended before this host's upgrade began (the message says when)."""


class BadStopAt(ValueError):
    """security_updates_stop_at is not a UTC time (bad input)."""


def window_end(stop_at: str):
    """security_updates_stop_at as a UTC time (None when empty); BadStopAt in one line."""
    if not stop_at:
        return None
    try:
        return timestamps.parse_iso(stop_at)
    except ValueError:
        raise BadStopAt(
            "security_updates_stop_at %r is not a UTC time like 2026-12-07T03:00:00Z" % (stop_at,)
        ) from None


def window_refusal(stop, now) -> str:
    """Why this host's upgrade must not begin at ``now`` ('' when it may): the window ended."""
    if stop is None or now < stop:
        return ""
    return "not started: the window ended at %s (UTC)" % stop.strftime("%Y-%m-%d %H:%M:%S")


def refuse_after_window(stop) -> None:
    """Raise WindowEnded when the window has ended now."""
    why = window_refusal(stop, clock())
    if why:
        raise WindowEnded(why)


def lock_holder(path: str) -> bool:
    """Whether another process holds ``path`` (apt and dpkg use fcntl record locks)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_for_locks(paths, timeout: int, what: str = "the dpkg lock") -> float:
    """Wait until no process holds any of ``paths``; return the seconds waited."""
    start = time.monotonic()
    while any(lock_holder(path) for path in paths):
        waited = time.monotonic() - start
        if waited >= timeout:
            raise TimeoutError(f"{what} is still held after {timeout} s")
        time.sleep(1)
    return round(time.monotonic() - start, 1)


def wait_for_dpkg_lock(timeout: int) -> float:
    """Wait until no process holds the dpkg locks; return the seconds waited."""
    return wait_for_locks(DPKG_LOCKS, timeout)


def refresh_lists(timeout: int) -> float:
    """Refresh the package lists as ansible.builtin.apt's update_cache does (python3-apt's
    Cache.update: any list that cannot be fetched fails); return the seconds waited for the
    lists lock. The lists are a cache: this changes no installed package."""
    waited = wait_for_locks((LISTS_LOCK,), timeout, "the apt lists lock")
    try:
        import apt  # python3-apt, as for the plan
    except ImportError as exc:
        raise RuntimeError(
            "python3-apt is not installed on the host (apt install python3-apt)"
        ) from exc
    try:
        apt.Cache().update()
    except (apt.cache.FetchFailedException, apt.cache.LockFailedException, SystemError) as exc:
        raise RuntimeError(f"refreshing the package lists failed: {exc}") from exc
    return waited


def interrupted_packages() -> list[str]:
    """Packages dpkg left half-done (``dpkg --audit``), or ["(journal)"] for a pending journal."""
    audit = subprocess.run(["dpkg", "--audit"], capture_output=True, text=True, check=False)
    names = sorted(set(re.findall(r"^ (\S+)\s", audit.stdout, re.MULTILINE)))
    if (
        not names
        and os.path.isdir(DPKG_UPDATES)
        and any(entry.isdigit() for entry in os.listdir(DPKG_UPDATES))
    ):
        names = ["(dpkg journal)"]
    return names


def recover(module: AnsibleModule) -> dict:
    waited = wait_for_dpkg_lock(module.params["lock_timeout"])
    broken = interrupted_packages()
    result = {"changed": bool(broken), "waited": waited, "recovered": broken}
    if broken and not module.check_mode:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", NEEDRESTART_SUSPEND="1")
        proc = subprocess.run(
            ["dpkg", "--configure", "-a", "--force-confdef", "--force-confold"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            module.fail_json(
                msg=f"dpkg --configure -a failed (exit {proc.returncode}): "
                + (lines[-1] if lines else "no output"),
                **result,
            )
        left = interrupted_packages()
        if left:
            module.fail_json(
                msg="dpkg --configure -a left packages half-configured: " + ", ".join(left),
                **result,
            )
    return result


def origin_fields(pkg_file) -> dict:
    return {
        "origin": pkg_file.origin or "",
        "label": pkg_file.label or "",
        "archive": pkg_file.archive or "",
        "codename": pkg_file.codename or "",
        "site": pkg_file.site or "",
    }


def matches(fields: dict, patterns: list[dict]) -> bool:
    return any(
        all(fnmatch.fnmatchcase(fields.get(key, ""), str(want)) for key, want in pattern.items())
        for pattern in patterns
    )


def is_security(version, patterns: list[dict]) -> bool:
    return any(matches(origin_fields(pf), patterns) for pf, _ in version.file_list)


def describe_origin(version) -> str:
    for pf, _ in version.file_list:
        if pf.archive != "now":  # "now" is dpkg's status file, not a repository
            fields = origin_fields(pf)
            return f"{fields['origin']}/{fields['archive'] or fields['codename']}"
    return "local"


def drags_held(apt_pkg, cache, pkg, version, held: set[str]) -> tuple[bool, str]:
    """Simulate installing ``version`` alone; whether it changes a held package, and which."""
    depcache = apt_pkg.DepCache(cache)
    depcache.set_candidate_ver(pkg, version)
    depcache.mark_install(pkg, True, True)
    if depcache.broken_count:
        return True, "its dependencies cannot be satisfied"
    for name in sorted(held):
        try:
            other = cache[name]
        except KeyError:  # a hold-list entry that is not a known package
            continue
        if other.id != pkg.id and (depcache.marked_upgrade(other) or depcache.marked_delete(other)):
            return True, f"it would change held package {name}"
    return False, ""


def outdated_services() -> tuple[list[str], list[str]]:
    """Units (and other processes) that still map replaced files: they run the old code."""
    units, others = set(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
                fields = (line.split(None, 5) for line in maps)
                paths = (parts[5] for parts in fields if len(parts) == 6)
                stale = any(
                    path.startswith(LIBRARY_PREFIXES) and path.endswith(" (deleted)\n")
                    for path in paths
                )
            if not stale:
                continue
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as cgroup:
                found = UNIT.findall(cgroup.read())
            if found:
                units.add(found[-1])
            else:
                with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
                    others.add(f"{comm.read().strip()} (pid {pid})")
        except OSError:  # gone, or not ours to read (containers without CAP_SYS_PTRACE)
            continue
    return sorted(units), sorted(others)


def reboot_state() -> tuple[bool, list[str]]:
    if not os.path.exists(REBOOT_REQUIRED):
        return False, []
    try:
        with open(REBOOT_REQUIRED + ".pkgs", encoding="utf-8") as pkgs:
            return True, sorted({line.strip() for line in pkgs if line.strip()})
    except OSError:
        return True, []


def newest_security(apt_pkg, newer: list, patterns: list[dict]):
    """The newest of ``newer`` that comes from a security origin, or None."""
    target = None
    for version in newer:
        if is_security(version, patterns) and (
            target is None or apt_pkg.version_compare(version.ver_str, target.ver_str) > 0
        ):
            target = version
    return target


def survey(apt_pkg, cache, params: dict) -> dict:
    """Every installed package's version, and each one with a newer candidate sorted into
    security/other, held, and the (package, version, entry) upgrades to try."""
    policy = apt_pkg.DepCache(cache)
    hold_list = set(params["hold"])
    found = {"installed": {}, "security": [], "other": [], "held": [], "candidates": []}
    for pkg in cache.packages:
        current = pkg.current_ver
        if current is None:
            continue
        name = pkg.get_fullname(True)
        found["installed"][name] = current.ver_str
        newer = [
            v for v in pkg.version_list if apt_pkg.version_compare(v.ver_str, current.ver_str) > 0
        ]
        if not newer:
            continue
        candidate = policy.get_candidate_ver(pkg)
        if candidate is None or apt_pkg.version_compare(candidate.ver_str, current.ver_str) <= 0:
            continue  # pinned below, or only older versions available
        target = newest_security(apt_pkg, newer, params["security_origins"])
        entry = {
            "name": name,
            "from": current.ver_str,
            "candidate": candidate.ver_str,
            "origin": describe_origin(candidate),
        }
        if target is not None:
            entry["security"] = target.ver_str
        found["security" if target is not None else "other"].append(entry)
        if pkg.selected_state == apt_pkg.SELSTATE_HOLD or name in hold_list:
            found["held"].append(name)
            continue
        chosen = candidate if params["mode"] == "all" else target
        if chosen is not None:
            found["candidates"].append((pkg, chosen, entry))
    return found


def plan(module: AnsibleModule) -> dict:
    try:
        import apt_pkg
    except ImportError:
        module.fail_json(msg="python3-apt is not installed on the host (apt install python3-apt)")
    apt_pkg.init()
    cache = apt_pkg.Cache(None)
    found = survey(apt_pkg, cache, module.params)
    held_names = set(module.params["hold"]) | {
        p.get_fullname(True) for p in cache.packages if p.selected_state == apt_pkg.SELSTATE_HOLD
    }
    blocked, upgrades = [], []
    for pkg, version, entry in found["candidates"]:
        refused, why = drags_held(apt_pkg, cache, pkg, version, held_names)
        if refused:
            blocked.append({"name": entry["name"], "to": version.ver_str, "reason": why})
        else:
            upgrades.append({"name": entry["name"], "from": entry["from"], "to": version.ver_str})
    reboot, reboot_pkgs = reboot_state()
    units, processes = outdated_services()
    exclude = set(module.params["restart_exclude"])
    return {
        "changed": False,
        "upgrades": upgrades,
        "install": ["%s=%s" % (u["name"], u["to"]) for u in upgrades],
        "restart": [unit for unit in units if unit not in exclude],
        "pending_security": found["security"],
        "pending_other": found["other"],
        "held": sorted(found["held"]),
        "blocked": blocked,
        "installed": found["installed"],
        "reboot_required": reboot,
        "reboot_packages": reboot_pkgs,
        "outdated_services": units,
        "outdated_processes": processes,
    }


def needs_action(planned: dict, restart_services: bool, reboot: bool) -> bool:
    """Whether the role has work after the plan: an upgrade, a restart of services running
    replaced libraries (when allowed), a reboot an upgrade asked for (when allowed)."""
    return bool(
        planned["upgrades"]
        or (restart_services and planned["restart"])
        or (reboot and planned["reboot_required"])
    )


def prepare(module: AnsibleModule) -> dict:
    """recover, refresh the lists (``refresh_lists``), plan: one call before the upgrade. Not
    begun when the window (``stop_at``) has ended; refused again when it ended while waiting
    for locks or refreshing, if there is an upgrade to begin."""
    stop = window_end(module.params["stop_at"])
    refuse_after_window(stop)
    recovered = recover(module)
    if module.params["refresh_lists"]:
        recovered["waited"] += refresh_lists(module.params["lock_timeout"])
    planned = plan(module)
    planned.update(recovered)
    planned["act"] = needs_action(
        planned, module.params["restart_services"], module.params["reboot"]
    )
    if planned["act"]:
        refuse_after_window(stop)
    return planned


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {
                "type": "str",
                "required": True,
                "choices": ["prepare", "recover", "plan"],
            },
            "mode": {"type": "str", "default": "security", "choices": ["security", "all"]},
            "security_origins": {"type": "list", "elements": "dict", "default": []},
            "hold": {"type": "list", "elements": "str", "default": []},
            "lock_timeout": {"type": "int", "default": 300},
            "restart_exclude": {"type": "list", "elements": "str", "default": []},
            "refresh_lists": {"type": "bool", "default": False},
            "restart_services": {"type": "bool", "default": False},
            "reboot": {"type": "bool", "default": False},
            "stop_at": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    actions = {"prepare": prepare, "recover": recover, "plan": plan}
    try:
        module.exit_json(**actions[module.params["action"]](module))
    except WindowEnded as exc:
        module.fail_json(msg=str(exc), window_ended=True)
    except BadStopAt as exc:
        module.fail_json(msg=str(exc), opsplay_bad_input=True)
    except (TimeoutError, RuntimeError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
