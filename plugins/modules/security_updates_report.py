#!/usr/bin/python
"""What a security-updates run did and left pending: see DOCUMENTATION."""

from __future__ import annotations

DOCUMENTATION = r"""
module: security_updates_report
short_description: Report a security-updates run and record what stays pending (opsplay)
description:
  - The last step of the opsplay C(security_updates) role on one Debian/Ubuntu host. From the
    results the role registered (the plan before the upgrade, the inspection after it, the dpkg
    recovery, the services restarted, the reboot) it decides what was upgraded (or, in check
    mode, would be), what still needs a person (held or refused upgrades, a reboot, services
    running replaced libraries) and the one-line summary the CLI prints.
  - It writes what stays pending to O(record_path) (read by C(opsplay status)), creating its
    directory, atomically and only when the content changes (no timestamps inside; the file's
    mtime says since when the facts hold). Check mode writes nothing and reports whether it
    would.
  - The report goes to the run summary as C(ansible_stats) (the C(security_updates) key, one
    entry per host, aggregated), so no C(set_stats) task is needed.
options:
  before:
    description: The registered result of C(opsplay.ops.security_updates_apt) O(action=plan).
    type: dict
    required: true
  after:
    description:
      - The registered result of the inspection after the upgrade (the same plan action); a
        skipped task's result (no C(installed)) means nothing was upgraded and the plan before
        still describes the host.
    type: dict
    default: {}
  recover:
    description: The registered result of C(opsplay.ops.security_updates_apt) O(action=recover).
    type: dict
    default: {}
  restarted:
    description:
      - The registered result of the restart loop (its C(results), one per service); the items
        whose result changed were restarted.
    type: dict
    default: {}
  rebooted:
    description: The registered result of the reboot task (changed when the host rebooted).
    type: dict
    default: {}
  mode:
    description: The plan's mode, V(security) or V(all).
    type: str
    default: security
    choices: [security, all]
  reboot:
    description: Whether the role may reboot (only named in the summary when it may not).
    type: bool
    default: false
  record_path:
    description: Where the pending state is recorded for C(opsplay status).
    type: path
    required: true
  host:
    description: The host's inventory name, the key of its report in the run summary.
    type: str
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author: opsplay
"""

EXAMPLES = r"""
- name: Report the security updates and record what stays pending
  opsplay.ops.security_updates_report:
    before: "{{ security_updates_before }}"
    after: "{{ security_updates_after }}"
    recover: "{{ security_updates_recover }}"
    restarted: "{{ security_updates_restarted }}"
    rebooted: "{{ security_updates_rebooted }}"
    mode: "{{ security_updates_mode }}"
    reboot: "{{ security_updates_reboot }}"
    record_path: /var/lib/opsplay/status/security-updates.json
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
msg:
  description: The one-line summary (also RV(report.summary)).
  returned: always
  type: str
  sample: "upgraded 1: openssl 3.0.14-1~deb12u2 -> 3.0.15-1~deb12u1; REBOOT REQUIRED by libc6"
report:
  description:
    - What the run did and left, as C(summary), C(mode), C(check), C(upgraded) (C(name),
      C(from), C(to)), C(pending_security), C(pending_other), C(held), C(blocked),
      C(recovered_dpkg), C(lock_waited_seconds), C(reboot_required), C(reboot_packages),
      C(rebooted), C(outdated_services) and C(restarted_services).
  returned: always
  type: dict
host_changed:
  description:
    - Whether the run changed the host - packages upgraded, services restarted or a reboot
      (never in check mode). The rollout's health check after a batch runs where it is true.
  returned: always
  type: bool
record:
  description:
    - What was written to O(record_path), as C(pending_security), C(pending_other_count),
      C(held), C(refused), C(reboot_required) and C(outdated_services).
  returned: always
  type: dict
ansible_stats:
  description: The report for the run summary, under C(security_updates) and the host's name.
  returned: always
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def upgraded(before, state, check):
    """[{name, from, to}] for every package whose installed version changed (or, in check
    mode, would change)."""
    if check:
        return [{"name": p["name"], "from": p["from"], "to": p["to"]} for p in before["upgrades"]]
    old, new = before.get("installed", {}), state.get("installed", {})
    return [
        {"name": name, "from": old.get(name, ""), "to": new[name]}
        for name in sorted(new)
        if old.get(name) != new[name]
    ]


def restarted_services(restarted):
    return [r["item"] for r in restarted.get("results", []) if r.get("changed")]


def summary(report, before, reboot_allowed):
    """One line: what changed and what still needs a person."""
    done = ["%s %s -> %s" % (p["name"], p["from"], p["to"]) for p in report["upgraded"]]
    parts = [
        ("would upgrade " if report["check"] else "upgraded ")
        + str(len(done))
        + (": " + ", ".join(done) if done else "")
    ]
    if report["held"]:
        parts.append("held: " + ", ".join(report["held"]))
    parts += ["refused %s %s: %s" % (b["name"], b["to"], b["reason"]) for b in before["blocked"]]
    if report["mode"] == "security" and report["pending_other"]:
        parts.append("non-security updates pending: %d" % len(report["pending_other"]))
    if report["recovered_dpkg"]:
        parts.append("recovered interrupted dpkg: " + ", ".join(report["recovered_dpkg"]))
    if report["reboot_required"]:
        by = " by " + ", ".join(report["reboot_packages"]) if report["reboot_packages"] else ""
        if report["rebooted"]:
            why = " (rebooted)"
        else:
            why = "" if reboot_allowed else " (not rebooted: security_updates_reboot is false)"
        parts.append("REBOOT REQUIRED" + by + why)
    if report["restarted_services"]:
        parts.append(
            "restarted (were running replaced libraries): "
            + ", ".join(report["restarted_services"])
        )
    if report["outdated_services"]:
        parts.append(
            "services running replaced libraries: " + ", ".join(report["outdated_services"])
        )
    return "; ".join(parts)


def build(params, check):
    """(report, record) from the registered results in ``params``."""
    before, after = params["before"], params["after"] or {}
    state = after if after.get("installed") is not None else before
    restarted = restarted_services(params["restarted"] or {})
    outdated = [s for s in state["outdated_services"] if s not in restarted]
    recover = params["recover"] or {}
    report = {
        "mode": params["mode"],
        "check": check,
        "upgraded": upgraded(before, state, check),
        "pending_security": [p["name"] for p in state["pending_security"]],
        "pending_other": [p["name"] for p in state["pending_other"]],
        "held": before["held"],
        "blocked": before["blocked"],
        "recovered_dpkg": recover.get("recovered", []),
        "lock_waited_seconds": recover.get("waited", 0),
        "reboot_required": state["reboot_required"],
        "reboot_packages": state["reboot_packages"],
        "rebooted": bool((params["rebooted"] or {}).get("changed")),
        "outdated_services": outdated,
        "restarted_services": restarted,
    }
    report["summary"] = summary(report, before, params["reboot"])
    record = {
        "pending_security": report["pending_security"],
        "pending_other_count": len(state["pending_other"]),
        "held": before["held"],
        "refused": [b["name"] for b in before["blocked"]],
        "reboot_required": state["reboot_required"],
        "outdated_services": outdated,
    }
    return report, record


def host_changed(report):
    """Whether the run changed the host: packages upgraded, services restarted, a reboot."""
    if report["check"]:
        return False
    return bool(report["upgraded"] or report["restarted_services"] or report["rebooted"])


def write_record(path, text, check):
    """True when ``path`` did not hold ``text`` (written unless ``check``): tmp, fsync, rename."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    if check:
        return True
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    tmp = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "before": {"type": "dict", "required": True},
            "after": {"type": "dict", "default": {}},
            "recover": {"type": "dict", "default": {}},
            "restarted": {"type": "dict", "default": {}},
            "rebooted": {"type": "dict", "default": {}},
            "mode": {"type": "str", "default": "security", "choices": ["security", "all"]},
            "reboot": {"type": "bool", "default": False},
            "record_path": {"type": "path", "required": True},
            "host": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    report, record = build(module.params, module.check_mode)
    # the format the role's copy task wrote before (to_nice_json), so no run rewrites it
    text = json.dumps(record, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
    try:
        changed = write_record(module.params["record_path"], text, module.check_mode)
    except OSError as exc:
        module.fail_json(
            msg="cannot record the pending updates in %s: %s"
            % (module.params["record_path"], exc.strerror or exc)
        )
    module.exit_json(
        changed=changed,
        host_changed=host_changed(report),
        msg=report["summary"],
        report=report,
        record=record,
        ansible_stats={
            "data": {"security_updates": {module.params["host"]: report}},
            "per_host": False,
            "aggregate": True,
        },
    )


if __name__ == "__main__":
    main()
