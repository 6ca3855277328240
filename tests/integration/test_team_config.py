"""A team's own ansible.cfg beside its inventories: its settings win key by key, the callbacks
it enables run next to opsplay's, and opsplay's tuning fills in the rest (a real lab run)."""

from __future__ import annotations

import json
import shutil

from opsplay.errors import ExitCode

HOST = "opsplay-lab-1"


def test_team_callback_and_settings_in_a_real_run(run_opsplay, lab_inventories, tmp_path):
    root = tmp_path / "inventories"
    shutil.copytree(lab_inventories / "lab", root / "lab")
    (root / "ansible.cfg").write_text(
        "[defaults]\n"
        "callbacks_enabled = ansible.posix.profile_tasks\n"
        "forks = 3\n"
        "[callback_profile_tasks]\n"
        "summary_only = true\n"
    )
    env = {"OPSPLAY_INVENTORY_DIR": str(root)}

    shown = json.loads(run_opsplay("config", "--json", env=env).out)
    assert shown["team_file"] == str(root / "ansible.cfg")
    sources = {s["name"]: s for s in shown["settings"]}
    assert sources["ANSIBLE_FORKS"]["value"] == "3"
    assert sources["ANSIBLE_FORKS"]["source"].startswith("team ansible.cfg")
    assert sources["ANSIBLE_GATHERING"]["source"].startswith("opsplay")

    run = run_opsplay("run", "health", "--env", "lab", "--limit", HOST, "--json", "-vvv", env=env)
    assert run.code == ExitCode.OK, run.err
    run_id = json.loads(run.out)["id"]
    shown = run_opsplay("history", "show", run_id, env=env)
    assert shown.code == ExitCode.OK, shown.err
    # profile_tasks' summary (task names with their durations) in the run's own output...
    assert "Report health" in shown.out and "=====" in shown.out, shown.out[-2000:]
    # ...next to opsplay's own callback, which the team's callbacks_enabled did not replace
    assert "opsplay_prefork: plugins loaded in" in shown.out
    # the run read the team's file (Ansible says which, at -v and up)
    assert f"Using {root / 'ansible.cfg'} as config file" in shown.out
