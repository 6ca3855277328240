"""The backup host's side of pg_backup's off-host copies (plugins/modules/pg_backup_offsite.py):
what the plan sends, and how received copies are checked and promoted. No host: temporary
directories stand for the backup host's DIR/<db host>."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import BackupError
from ansible_collections.opsplay.ops.plugins.modules import pg_backup_offsite as offsite

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
KEEP = {"keep_last": 1, "keep_daily": 2, "keep_weekly": 0, "keep_monthly": 0}


def copy(day: int, database: str = "shop", data: bytes = b"PGDMP archive") -> dict:
    """A verified local backup of the database host, as the role passes it (no ended)."""
    started = f"2026-11-{day:02d}T01:00:00Z"
    return {
        "name": f"{database}_202611{day:02d}T010000Z.dump",
        "database": database,
        "sha256": hashlib.sha256(data).hexdigest(),
        "started": started,
        "format": "custom",
        "size_bytes": len(data),
    }


def held(entry: dict) -> dict:
    """The manifest of a copy the backup host already holds."""
    return dict(entry, ended=entry["started"], verified={"ok": True}, path="p", manifest_path="m")


def test_the_plan_sends_what_the_backup_host_lacks():
    result = offsite.plan([held(copy(1))], [copy(1), copy(2)], KEEP)
    assert result["held"] == ["shop_20261101T010000Z.dump"]
    assert [c["name"] for c in result["send"]] == ["shop_20261102T010000Z.dump"]
    assert result["files"] == [
        "shop/shop_20261102T010000Z.dump",
        "shop/shop_20261102T010000Z.dump.sha256",
        "shop/shop_20261102T010000Z.dump.json",
    ]
    assert result["send_bytes"] == len(b"PGDMP archive")
    assert result["would_delete"] == []
    assert result["msg"] == "1 held, 1 to copy"


def test_the_plan_does_not_send_what_the_retention_would_prune_at_once():
    # keep the newest of the last 2 days: day 1 would be deleted as soon as it arrived
    result = offsite.plan([], [copy(1), copy(2), copy(3)], KEEP)
    assert [c["name"] for c in result["send"]] == [
        "shop_20261102T010000Z.dump",
        "shop_20261103T010000Z.dump",
    ]


def test_the_plan_names_held_copies_the_retention_would_delete_once_the_new_ones_are_in():
    result = offsite.plan([held(copy(1)), held(copy(2))], [copy(3)], KEEP)
    assert [c["name"] for c in result["send"]] == ["shop_20261103T010000Z.dump"]
    assert result["would_delete"] == ["shop_20261101T010000Z.dump"]


def test_the_plan_never_deletes_a_bad_held_copy():
    bad = dict(held(copy(1)), verified={"ok": False})
    result = offsite.plan([bad, held(copy(2))], [copy(3)], KEEP)
    assert result["would_delete"] == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "database": "shop", "started": "x"}, "backup entry without sha256"),
        (dict(copy(1), name="../shop.dump"), "unusable backup name ../shop.dump"),
        (dict(copy(1), database=".incoming"), "unusable backup name"),
    ],
)
def test_unusable_copies_are_refused_in_one_line(entry, message):
    with pytest.raises(BackupError, match=message.replace(".", r"\.")):
        offsite.check_copies([entry])


def incoming_copy(root, entry, data=b"PGDMP archive", manifest=None):
    folder = root / ".incoming" / entry["database"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / entry["name"]).write_bytes(data)
    (folder / (entry["name"] + ".sha256")).write_text(
        f"{hashlib.sha256(data).hexdigest()}  {entry['name']}\n"
    )
    body = dict(held(entry), verified={"ok": True, "at": entry["started"], "problem": ""})
    body.pop("path"), body.pop("manifest_path")
    (folder / (entry["name"] + ".json")).write_text(json.dumps(manifest or body))


def params(root, copies):
    return dict(KEEP, backup_dir=str(root), incoming=".incoming", copies=copies)


def test_receive_promotes_matching_copies_manifest_last_and_drops_the_rest(tmp_path):
    good, bad = copy(2), copy(3, data=b"other")
    incoming_copy(tmp_path, good)
    incoming_copy(tmp_path, bad, data=b"tampered")
    (tmp_path / ".incoming" / "stray").write_text("x")
    changed, result = offsite.receive(params(tmp_path, [good, bad]), check_mode=False)
    assert changed
    assert result["promoted"] == [good["name"]]
    assert result["bad"] == [
        f"offsite copy of {bad['name']} is bad: checksum mismatch"
        f" (sha256 {hashlib.sha256(b'tampered').hexdigest()}, expected {bad['sha256']})"
    ]
    assert result["deleted"] == []  # a bad copy: no retention this time
    assert result["leftovers_removed"] == ["stray"]
    assert not (tmp_path / ".incoming").exists()
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == [
        good["name"],
        good["name"] + ".json",
        good["name"] + ".sha256",
    ]


def test_receive_in_check_mode_changes_nothing(tmp_path):
    entry = copy(2)
    incoming_copy(tmp_path, entry)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    changed, result = offsite.receive(params(tmp_path, [entry]), check_mode=True)
    assert changed and result["promoted"] == [entry["name"]]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_backup_host_module_imports_no_postgresql_or_age_code():
    code = (
        f"import sys; sys.path.insert(0, {str(COLLECTIONS)!r}); "
        "import ansible_collections.opsplay.ops.plugins.modules.pg_backup_offsite; "
        "print(sorted(m for m in sys.modules if 'psycopg2' in m or 'pg_backup_age' in m"
        " or 'pg_backup_tools' in m or 'pg_backup_host' in m or 'postgres' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
