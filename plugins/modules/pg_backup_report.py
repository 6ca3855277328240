#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role, run as root after the backup: writes the Prometheus
textfile from the manifests (atomically, 0644 root, only when it changes) and passes or fails the
host with the run's one-line report (module_utils/pg_backup_report.py decides both).

Why a second module and not pg_backup_dump: the backups belong to the PostgreSQL OS user and are
written by a module running as that user; node_exporter's textfile directory and file belong to
root, and an atomic replace needs write access to that directory. Root reads the manifests
(0600, postgres) for the metrics; nothing of the backups is written here.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    describe_os_error,
    manifests,
    remove,
    write_file,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_report import (
    prom_text,
    report,
    summary_of_manifests,
)

METRICS_FILE = "pg_backup.prom"


def write_metrics(params, check_mode):
    """(changed, path) after making metrics_dir/pg_backup.prom say what the manifests say."""
    summary = summary_of_manifests(manifests(params["backup_dir"], params["databases"]))
    text = prom_text(summary)
    folder = params["metrics_dir"]
    path = os.path.join(folder, METRICS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False, path
    except OSError:
        pass
    if check_mode:
        return True, path
    os.makedirs(folder, mode=0o755, exist_ok=True)
    tmp = os.path.join(folder, "." + METRICS_FILE + ".tmp")  # not *.prom: never collected
    try:
        write_file(tmp, text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except OSError:
        remove(tmp)
        raise
    return True, path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=dict(type="path", required=True),
            databases=dict(type="list", elements="str", default=[]),
            metrics_dir=dict(type="path", default=""),
            backup=dict(type="dict"),
            retention=dict(type="dict"),
            offsite=dict(type="dict", default={}),
            restore_test=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    os.umask(0o022)
    changed, path = False, ""
    try:
        if params["metrics_dir"]:
            changed, path = write_metrics(params, module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=describe_os_error(exc, exc.filename or params["metrics_dir"]))
    tested = params["restore_test"]
    if tested is not None:  # pg_backup_restore_test's result: its problems fail the host
        if tested.get("problems"):
            module.fail_json(msg="; ".join(tested["problems"]), changed=changed, metrics_file=path)
        module.exit_json(changed=changed, msg=tested.get("msg", ""), metrics_file=path)
    if params["backup"] is None:
        msg = "metrics %s" % ("written" if changed else "unchanged") if path else "metrics off"
        module.exit_json(changed=changed, msg=msg, metrics_file=path)
    problem, msg = report(
        params["backup"], params["retention"], params["offsite"], module.check_mode
    )
    if problem:
        module.fail_json(msg=problem, changed=changed, metrics_file=path)
    module.exit_json(changed=changed, msg=msg, metrics_file=path)


if __name__ == "__main__":
    main()
