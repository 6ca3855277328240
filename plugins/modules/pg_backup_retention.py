#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role: grandfather-father-son pruning of the verified backups
under backup_dir (the selection is module_utils/pg_backup_gfs.py; deleting, manifest first, is
module_utils/pg_backup_files.py retention()). Bad backups are never deleted and never counted."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    describe_os_error,
    retention,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=dict(type="path", required=True),
            databases=dict(type="list", elements="str", default=[]),
            keep_last=dict(type="int", default=1),
            keep_daily=dict(type="int", default=7),
            keep_weekly=dict(type="int", default=4),
            keep_monthly=dict(type="int", default=6),
            not_good=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    os.umask(0o077)
    try:
        changed, result = retention(module.params, module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=describe_os_error(exc, module.params["backup_dir"]))
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
