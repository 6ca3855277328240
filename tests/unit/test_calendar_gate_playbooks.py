"""The playbooks' run gates agree with the CLI (src/opsplay/playbooks.py, src/opsplay/leases.py):
each playbook declares what it is (opsplay_gate: what, schedule, disruptive, lease) and the CLI
must say the same, or a run the CLI lets through would be refused under AWX (or the reverse).
And the gate really runs first: a plain ansible-playbook run of the weekly outside its window
fails in the gate without contacting any host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsplay.leases import READ_ONLY, takes_lease
from opsplay.playbooks import PROCEDURES, SCHEDULES, available_procedures, schedule

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
GATE_PLAY, RELEASE_PLAY = "Take the run gates", "Release this run's leases"
BOOKS = [*available_procedures(), *(schedule(s) for s in SCHEDULES)]


def plays(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((PLAYBOOKS / f"{name}.yml").read_text())


def gate_of(name: str) -> dict[str, Any] | None:
    found = [p for p in plays(name) if p.get("name") == GATE_PLAY]
    return found[0]["vars"]["opsplay_gate"] if found else None


def cli_what(book) -> str:
    if book.schedule:
        return f"maintenance {book.schedule}"
    if book.name == "maintenance-mode":
        return "maintenance-mode {{ state | default('') }}"
    return f"run {book.name}"


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
def test_each_playbook_declares_what_the_cli_says(book):
    gate = gate_of(book.name)
    if not takes_lease(book) and not book.disruptive and not book.schedule:
        assert gate is None, f"{book.name} is read-only: no gate, no lease"
        return
    assert gate is not None, f"{book.name}.yml has no '{GATE_PLAY}' play"
    assert gate == {
        "what": cli_what(book),
        "schedule": book.schedule or "",
        "disruptive": cli_disruptive(book),
        "lease": takes_lease(book),
    }


def cli_disruptive(book) -> bool | str:
    if book.harmless_when:
        name, value = book.harmless_when
        return f"{{{{ ({name} | default('')) != '{value}' }}}}"
    return book.disruptive


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
def test_the_gates_come_before_any_role_and_the_release_last(book):
    names = [p.get("name") for p in plays(book.name)]
    if gate_of(book.name) is None:
        assert RELEASE_PLAY not in names
        return
    first_work = next(i for i, p in enumerate(plays(book.name)) if p.get("roles") or _uses_roles(p))
    assert names.index(GATE_PLAY) < first_work
    assert names[-1] == RELEASE_PLAY


def _uses_roles(play: dict[str, Any]) -> bool:
    text = json.dumps(play)
    return "import_role" in text or "include_role" in text or "import_playbook" in text


def test_imported_playbooks_leave_the_gates_to_the_outer_one():
    for book in BOOKS:
        for play in plays(book.name):
            inner = play.get("ansible.builtin.import_playbook")
            if inner and gate_of(Path(inner).stem) is not None:
                assert play.get("vars") == {"opsplay_imported": True}, (book.name, inner)


def test_read_only_procedures_are_known():
    assert set(PROCEDURES) >= READ_ONLY


@pytest.fixture
def calendar_elsewhere(tmp_path: Path) -> Path:
    """A calendar whose only window is not today: every run now is outside it."""
    import datetime as dt

    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(dt.date.today().weekday() + 3) % 7]
    path = tmp_path / "vars.json"
    calendar = {"timezone": "UTC", "windows": {"weekly": f"{day} 03:00-03:01"}}
    path.write_text(json.dumps({"opsplay_calendar": calendar, "opsplay_env": "prod"}))
    return path


def ansible_playbook(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
    }
    command = [str(Path(sys.executable).parent / "ansible-playbook"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_plain_ansible_playbook_outside_the_window_stops_in_the_gate(calendar_elsewhere):
    # hosts that do not exist: any task that reached them would make them unreachable
    inventory = "db.invalid,web.invalid,"
    run = ansible_playbook(
        "-i", inventory, str(PLAYBOOKS / "maintenance-weekly.yml"), "-e", f"@{calendar_elsewhere}"
    )
    assert run.returncode == 2, run.stdout
    assert "maintenance weekly on prod refused: weekly window is " in run.stdout
    assert "(opsplay_outside_window_reason=REASON overrides)" in run.stdout
    assert "unreachable=0" in run.stdout and "UNREACHABLE" not in run.stdout
    assert "TASK [Take this run's lease on the host]" not in run.stdout
    # the override lets it through to the lease: the first task that contacts a host
    run = ansible_playbook(
        "-i",
        inventory,
        str(PLAYBOOKS / "maintenance-weekly.yml"),
        "-e",
        f"@{calendar_elsewhere}",
        "-e",
        "opsplay_outside_window_reason=incident",
    )
    assert "TASK [Take this run's lease on the host]" in run.stdout
    assert "refused:" not in run.stdout
