"""A procedure's name leads to its playbook, its role and the role's Molecule scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplay.playbooks import PROCEDURES, SCHEDULES, available_procedures

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("book", available_procedures(), ids=lambda b: b.name)
def test_playbook_role_and_scenario(book):
    assert f"role: {book.role}" in book.path.read_text() or f"name: {book.role}" in (
        book.path.read_text()
    ), f"{book.path.name} does not use roles/{book.role}"
    assert (REPO / "roles" / book.role / "meta" / "argument_specs.yml").is_file()
    assert (REPO / "molecule" / book.role / "molecule.yml").is_file()


def test_every_playbook_is_a_known_procedure_or_schedule():
    known = set(PROCEDURES) | {f"maintenance-{s}" for s in SCHEDULES}
    assert {p.stem for p in (REPO / "playbooks").glob("*.yml")} <= known


def test_list_shows_each_available_procedure_once(opsplay):
    result = opsplay("run", "--list")
    names = [line.split()[0] for line in result.out.splitlines()]
    assert names == [b.name for b in available_procedures()]
    assert "roles/health" in result.out
