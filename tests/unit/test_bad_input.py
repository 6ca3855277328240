"""Bad input: one clear line on stderr naming the problem, exit 2, never a traceback."""

from __future__ import annotations

import pytest

from opsplay.errors import ExitCode


def assert_one_line(result, *needles):
    assert result.code == ExitCode.USAGE, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("opsplay: ")
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_env(opsplay, inventories):
    assert_one_line(opsplay("run", "health", "--env", "qa"), "unknown environment 'qa'", "dev")


def test_unknown_procedure(opsplay, inventories):
    assert_one_line(opsplay("run", "tea", "--env", "dev"), "unknown procedure 'tea'")


def test_unknown_schedule(opsplay, inventories):
    assert_one_line(opsplay("maintenance", "yearly", "--env", "dev"), "unknown schedule 'yearly'")


def test_missing_env_option(opsplay, inventories):
    assert_one_line(opsplay("run", "health"), "missing --env")


def test_missing_inventory_dir(opsplay, tmp_path):
    missing = tmp_path / "nowhere"
    assert_one_line(opsplay("--inventory-dir", str(missing), "envs"), str(missing))


def test_malformed_yaml_inventory(opsplay, inventories):
    (inventories / "dev" / "hosts.yml").write_text("all:\n  hosts: [unclosed\n")
    assert_one_line(opsplay("run", "health", "--env", "dev"), "malformed inventory", "hosts.yml")


def test_inventory_of_wrong_shape(opsplay, inventories):
    (inventories / "dev" / "hosts.yml").write_text("all:\n  hosts:\n    - a\n    - b\n")
    assert_one_line(opsplay("hosts", "--env", "dev"), "hosts.yml", 'Invalid "hosts" entry')


def test_env_without_hosts_file(opsplay, inventories):
    (inventories / "empty").mkdir()
    assert_one_line(opsplay("run", "health", "--env", "empty"), "has no inventory")


@pytest.mark.parametrize("bad", ["novalue", "1x=3", "=v", "{not: [closed}"])
def test_malformed_extra_vars(opsplay, inventories, bad):
    assert_one_line(opsplay("run", "health", "--env", "dev", "-e", bad), "malformed extra var")


def test_missing_extra_vars_file(opsplay, inventories, tmp_path):
    missing = tmp_path / "vars.yml"
    assert_one_line(opsplay("run", "health", "--env", "dev", "-e", f"@{missing}"), str(missing))


def test_extra_vars_file_not_a_mapping(opsplay, inventories, tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("- a\n- b\n")
    assert_one_line(opsplay("run", "health", "--env", "dev", "-e", f"@{path}"), "mapping")


def test_unknown_option(opsplay, inventories):
    assert_one_line(opsplay("run", "health", "--env", "dev", "--bogus"), "--bogus")


def test_bad_option_type(opsplay, inventories):
    assert_one_line(opsplay("run", "health", "--env", "dev", "--forks", "many"), "many")


def test_debug_shows_traceback(opsplay, inventories):
    result = opsplay("--debug", "run", "health", "--env", "qa")
    assert result.code == ExitCode.USAGE
    assert "Traceback" in result.err
