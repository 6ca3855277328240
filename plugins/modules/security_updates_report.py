#!/usr/bin/python
"""What a security-updates run did and left pending: see security_updates_report.yml beside it."""

from __future__ import annotations

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
    """(report, record) from the registered results in ``params``. The upgrade's results
    (after, restarted, rebooted) count only when the plan had work (before.act): else the
    upgrade tasks did not run and those variables, if any, are a previous run's."""
    before = params["before"]
    acted = before.get("act", True)
    after = (params["after"] or {}) if acted else {}
    state = after if after.get("installed") is not None else before
    restarted = restarted_services((params["restarted"] or {}) if acted else {})
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
        "rebooted": acted and bool((params["rebooted"] or {}).get("changed")),
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
