#!/usr/bin/python3
"""Ansible module opsplay.ops.security_updates_apt:
the apt side of roles/security_updates, on the managed host.

What it decides and does, its options and its results: DOCUMENTATION and RETURN below.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: security_updates_apt
short_description: Plan security updates and recover an interrupted dpkg run (Debian, Ubuntu)
description:
  - The apt side of the C(security_updates) role, on the managed Debian or Ubuntu host, as
    root (dpkg's locks, C(dpkg --configure -a) and other processes' C(/proc/PID/maps) need
    it). Never installs, upgrades or removes a package and never refreshes the package lists -
    the role does that with M(ansible.builtin.apt), from this module's plan.
  - O(action=recover) waits (at most O(lock_timeout) seconds) until no process holds the dpkg
    locks (C(/var/lib/dpkg/lock-frontend), C(/var/lib/dpkg/lock)), then finishes a dpkg run
    that was interrupted (packages C(dpkg --audit) lists, or a pending journal in
    C(/var/lib/dpkg/updates)) with
    C(dpkg --configure -a --force-confdef --force-confold), noninteractive. Changed when it had
    to. Fails when the lock stays held, when dpkg fails (naming dpkg's last line), or when
    packages are still half-configured afterwards. In check mode it waits for the lock the
    same way, then reports what it would recover and runs nothing.
  - O(action=plan) is read-only (also in check mode) and needs python3-apt on the host (as
    M(ansible.builtin.apt) does). For every installed package with a newer candidate it
    decides whether the upgrade is a security one (a newer version comes from an origin
    matching O(security_origins)) and which version to install - the newest security version
    with O(mode=security), the candidate with O(mode=all). Packages held (O(hold) or
    C(apt-mark hold)) are not upgraded, and an upgrade that would change or remove a held
    package, or whose dependencies cannot be satisfied, is refused (RV(blocked)) after a
    simulation of installing it alone. It also returns every installed version (to compare
    after the upgrade), whether C(/var/run/reboot-required) asks for a reboot and for which
    packages, and the services (and other processes) still running replaced (deleted)
    libraries.
options:
  action:
    description: V(recover) (wait for dpkg, finish an interrupted run) or V(plan) (read-only).
    type: str
    required: true
    choices: [recover, plan]
  mode:
    description:
      - With O(action=plan) - V(security) upgrades only packages with a security version (to
        the newest one), V(all) upgrades every package to its candidate.
    type: str
    default: security
    choices: [security, all]
  security_origins:
    description:
      - Patterns of the origins whose versions are security updates. A pattern is a dict of
        release fields (C(origin), C(label), C(archive), C(codename), C(site)) to shell-style
        globs (C(fnmatch), case-sensitive); a version matches a pattern when all of its fields
        match. Empty means no upgrade is a security one.
    type: list
    elements: dict
    default: []
  hold:
    description:
      - Packages never upgraded nor changed by another package's upgrade, as well as the
        packages marked C(apt-mark hold).
    type: list
    elements: str
    default: []
  lock_timeout:
    description: With O(action=recover), seconds to wait for the dpkg lock before failing.
    type: int
    default: 300
  restart_exclude:
    description:
      - With O(action=plan), services never listed in RV(restart) even when they run replaced
        libraries (restarting them would end sessions, e.g. C(systemd-logind.service)).
    type: list
    elements: str
    default: []
requirements:
  - python3-apt (apt_pkg) on the host, for O(action=plan)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: debian
author: opsplay
"""

EXAMPLES = r"""
- name: Wait for the dpkg lock and finish an interrupted dpkg run
  opsplay.ops.security_updates_apt:
    action: recover
    lock_timeout: "{{ security_updates_lock_timeout }}"
  register: security_updates_recover

- name: Plan the upgrades
  opsplay.ops.security_updates_apt:
    action: plan
    mode: "{{ security_updates_mode }}"
    security_origins: "{{ security_updates_security_origins }}"
    hold: "{{ security_updates_hold }}"
    restart_exclude: "{{ security_updates_restart_exclude }}"
  register: security_updates_before

- name: Plan the security upgrades of Debian and Ubuntu, never touching PostgreSQL
  opsplay.ops.security_updates_apt:
    action: plan
    mode: security
    security_origins:
      - origin: Debian
        label: Debian-Security
      - origin: Ubuntu
        archive: "*-security"
    hold: [postgresql-15, postgresql-client-15]
  register: security_updates_before
"""

RETURN = r"""
install:
  description: apt's C(NAME=VERSION) for every upgrade in RV(upgrades), the exact version chosen.
  returned: when O(action=plan)
  type: list
  elements: str
  sample: ["openssl=3.0.15-1~deb12u1"]
restart:
  description: RV(outdated_services) less O(restart_exclude), the services a restart would renew.
  returned: when O(action=plan)
  type: list
  elements: str
  sample: ["nginx.service"]
waited:
  description: Seconds waited for the dpkg lock (O(action=recover)), one decimal.
  returned: when O(action=recover)
  type: float
  sample: 0.0
recovered:
  description:
    - Packages dpkg had left half-done, finished with C(dpkg --configure -a) (in check mode,
      that would be); "(dpkg journal)" for a pending journal only. Empty when dpkg was fine.
  returned: when O(action=recover)
  type: list
  elements: str
  sample: [openssl]
upgrades:
  description:
    - What to install (O(action=plan)). Per package C(name), installed version C(from) and
      the version to install C(to); held and refused packages are not in it.
  returned: when O(action=plan)
  type: list
  elements: dict
  sample: [{"name": "openssl", "from": "3.0.15-1~deb12u1", "to": "3.0.17-1~deb12u2"}]
pending_security:
  description:
    - Installed packages with a newer security version, held or not. C(name), C(from),
      C(candidate) (apt's candidate), C(origin) (the candidate's C(origin/archive), or
      V(local)), and C(security) (the newest security version).
  returned: when O(action=plan)
  type: list
  elements: dict
  sample:
    - name: openssl
      from: 3.0.15-1~deb12u1
      candidate: 3.0.17-1~deb12u2
      origin: Debian/bookworm-security
      security: 3.0.17-1~deb12u2
pending_other:
  description:
    - Installed packages with a newer candidate and no security version (C(name), C(from),
      C(candidate), C(origin)).
  returned: when O(action=plan)
  type: list
  elements: dict
  sample: [{"name": "tzdata", "from": "2024a-0+deb12u1", "candidate": "2025b-0+deb12u1",
            "origin": "Debian/bookworm-updates"}]
held:
  description: Packages with an upgrade that are held (O(hold) or C(apt-mark hold)), sorted.
  returned: when O(action=plan)
  type: list
  elements: str
  sample: [postgresql-15]
blocked:
  description:
    - Upgrades refused - C(name), version C(to) and C(reason) (it would change held package
      NAME, or its dependencies cannot be satisfied).
  returned: when O(action=plan)
  type: list
  elements: dict
  sample: [{"name": "libpq5", "to": "15.14-0+deb12u1",
            "reason": "it would change held package postgresql-15"}]
installed:
  description: Every installed package to its version.
  returned: when O(action=plan)
  type: dict
  sample: {"openssl": "3.0.15-1~deb12u1", "libc6": "2.36-9+deb12u10"}
reboot_required:
  description: Whether C(/var/run/reboot-required) exists.
  returned: when O(action=plan)
  type: bool
  sample: true
reboot_packages:
  description: The packages C(/var/run/reboot-required.pkgs) names, sorted, each once.
  returned: when O(action=plan)
  type: list
  elements: str
  sample: [linux-image-6.1.0-41-amd64]
outdated_services:
  description: systemd units with a process still mapping a replaced library, sorted.
  returned: when O(action=plan)
  type: list
  elements: str
  sample: [nginx.service, postgresql@15-main.service]
outdated_processes:
  description: Other processes still mapping a replaced library, as "COMM (pid PID)".
  returned: when O(action=plan)
  type: list
  elements: str
  sample: [python3 (pid 4711)]
msg:
  description:
    - Why the module failed - the dpkg lock still held after O(lock_timeout) s,
      C(dpkg --configure -a) failing or leaving packages half-configured, or python3-apt
      missing.
  returned: failure
  type: str
  sample: the dpkg lock is still held after 300 s
"""

DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
DPKG_UPDATES = "/var/lib/dpkg/updates"
REBOOT_REQUIRED = "/var/run/reboot-required"
# Mapped files under these prefixes that were replaced on disk mean the process runs old code.
LIBRARY_PREFIXES = ("/usr/", "/lib", "/bin/", "/sbin/", "/opt/")
UNIT = re.compile(r"/([^/]+\.service)(?:/|$)", re.MULTILINE)


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


def wait_for_dpkg_lock(timeout: int) -> float:
    """Wait until no process holds the dpkg locks; return the seconds waited."""
    start = time.monotonic()
    while any(lock_holder(path) for path in DPKG_LOCKS):
        waited = time.monotonic() - start
        if waited >= timeout:
            raise TimeoutError(f"the dpkg lock is still held after {timeout} s")
        time.sleep(1)
    return round(time.monotonic() - start, 1)


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


def plan(module: AnsibleModule) -> dict:
    try:
        import apt_pkg
    except ImportError:
        module.fail_json(msg="python3-apt is not installed on the host (apt install python3-apt)")
    apt_pkg.init()
    cache = apt_pkg.Cache(None)
    policy = apt_pkg.DepCache(cache)
    patterns = module.params["security_origins"]
    hold_list = set(module.params["hold"])
    installed, security, other, held, blocked, upgrades = {}, [], [], [], [], []
    candidates = []
    for pkg in cache.packages:
        current = pkg.current_ver
        if current is None:
            continue
        name = pkg.get_fullname(True)
        installed[name] = current.ver_str
        newer = [
            v for v in pkg.version_list if apt_pkg.version_compare(v.ver_str, current.ver_str) > 0
        ]
        if not newer:
            continue
        candidate = policy.get_candidate_ver(pkg)
        if candidate is None or apt_pkg.version_compare(candidate.ver_str, current.ver_str) <= 0:
            continue  # pinned below, or only older versions available
        secure = [v for v in newer if is_security(v, patterns)]
        target = secure[0] if secure else None  # the newest security version
        if secure:
            for v in secure[1:]:
                if apt_pkg.version_compare(v.ver_str, target.ver_str) > 0:
                    target = v
        entry = {
            "name": name,
            "from": current.ver_str,
            "candidate": candidate.ver_str,
            "origin": describe_origin(candidate),
        }
        if target is not None:
            entry["security"] = target.ver_str
            security.append(entry)
        else:
            other.append(entry)
        if pkg.selected_state == apt_pkg.SELSTATE_HOLD or name in hold_list:
            held.append(name)
            continue
        chosen = candidate if module.params["mode"] == "all" else target
        if chosen is not None:
            candidates.append((pkg, chosen, entry))
    held_names = hold_list | {
        p.get_fullname(True) for p in cache.packages if p.selected_state == apt_pkg.SELSTATE_HOLD
    }
    for pkg, version, entry in candidates:
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
        "pending_security": security,
        "pending_other": other,
        "held": sorted(held),
        "blocked": blocked,
        "installed": installed,
        "reboot_required": reboot,
        "reboot_packages": reboot_pkgs,
        "outdated_services": units,
        "outdated_processes": processes,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": ["recover", "plan"]},
            "mode": {"type": "str", "default": "security", "choices": ["security", "all"]},
            "security_origins": {"type": "list", "elements": "dict", "default": []},
            "hold": {"type": "list", "elements": "str", "default": []},
            "lock_timeout": {"type": "int", "default": 300},
            "restart_exclude": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        if module.params["action"] == "recover":
            module.exit_json(**recover(module))
        module.exit_json(**plan(module))
    except TimeoutError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
