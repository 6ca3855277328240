#!/usr/bin/python3
# Managed by the opsplay `pg_backup` role.
"""Ansible module of the pg_backup role: grandfather-father-son pruning of the verified backups
under backup_dir (the selection is module_utils/pg_backup_gfs.py; deleting, manifest first, is
module_utils/pg_backup_files.py). Bad backups are never deleted and never counted."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup_retention
short_description: Delete PostgreSQL backups outside the GFS retention (opsplay pg_backup)
description:
  - Module of the opsplay pg_backup role; see the role's README and meta/argument_specs.yml.
  - Keeps the keep_last newest verified backups of each database (at least the newest), and the
    newest of each of the last keep_daily days, keep_weekly ISO weeks and keep_monthly months
    that have backups; deletes the other verified backups, each manifest first.
  - Backups not verified (or named in not_good) are never deleted and never counted; a database
    without a verified backup loses nothing. Check mode lists what would be deleted.
options:
  backup_dir: {type: path, required: true, description: One sub-directory of backups per database.}
  databases: {type: list, elements: str, default: [], description: Databases to prune; empty, all.}
  keep_last: {type: int, default: 1, description: The N newest verified backups.}
  keep_daily: {type: int, default: 7, description: Newest of each of the last N days.}
  keep_weekly: {type: int, default: 4, description: Newest of each of the last N ISO weeks.}
  keep_monthly: {type: int, default: 6, description: Newest of each of the last N months.}
  not_good:
    type: list
    elements: str
    default: []
    description: Backups (names) not to count as good (failed this run's verification).
author: opsplay
"""

EXAMPLES = r"""
- name: Delete backups outside the daily/weekly/monthly retention
  opsplay.ops.pg_backup_retention:
    backup_dir: /var/backups/postgresql
    keep_last: 2
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 6
"""

RETURN = r"""
msg: {description: What was (would be) deleted, one line., type: str, returned: always}
deleted: {description: Names of the backups deleted (would be, in check mode)., type: list,
          returned: success}
kept: {description: "Kept backups: {name: reasons (last+daily+...)}.", type: dict,
       returned: success}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import (
    BackupError,
    describe_os_error,
    manifests,
    prune,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_gfs import gfs

KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def retention(params, check_mode):
    """(changed, result) of applying the retention to params["backup_dir"]."""
    keep = {k: params[k] for k in KEEP}
    delete, kept = gfs(
        manifests(params["backup_dir"], params["databases"]), keep, set(params["not_good"])
    )
    names = prune(delete, check_mode)
    return bool(names), {
        "deleted": names,
        "kept": kept,
        "msg": ("would delete: " if check_mode else "deleted: ") + (", ".join(names) or "nothing"),
    }


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
