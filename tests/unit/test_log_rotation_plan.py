"""The log_rotation role's input checks (plugins/modules/log_rotation_plan.py)."""

import importlib.util
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[2] / "plugins" / "modules" / "log_rotation_plan.py"
spec = importlib.util.spec_from_file_location("log_rotation_plan", MODULE)
plan = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plan)

DEFAULTS = {
    "state": "present",
    "preset": "app",
    "paths": [],
    "size": "",
    "su": "",
    "create": True,
    "prerotate": "",
    "postrotate": "",
    "options": [],
}
PRESETS = {
    "app": {},
    "nginx": {
        "paths": ["/var/log/nginx/*.log"],
        "create": "0640 www-data adm",
        "prerotate": "if [ -d /etc/logrotate.d/httpd-prerotate ]; then\n"
        "    run-parts /etc/logrotate.d/httpd-prerotate\nfi",
        "postrotate": "if [ -s /run/nginx.pid ]; then nginx -s reopen; fi",
    },
}


def problems(*sets):
    return plan.problems(plan.merge(list(sets), DEFAULTS, PRESETS), PRESETS)


def app(**keys):
    return {"name": "app", "paths": ["/var/log/app/*.log"], **keys}


def test_merge_applies_defaults_then_preset_then_own_keys():
    merged = plan.merge([{"name": "nginx", "preset": "nginx", "create": False}], DEFAULTS, PRESETS)
    assert merged[0]["paths"] == ["/var/log/nginx/*.log"]
    assert merged[0]["create"] is False
    assert merged[0]["su"] == ""


def test_ordinary_sets_pass():
    assert (
        problems(
            {"name": "nginx", "preset": "nginx"},
            app(postrotate='kill -HUP "$(cat /run/app.pid)"\nf() { true; }; f', su="app adm"),
            app(name="old", state="absent", paths=[]),
        )
        == []
    )


@pytest.mark.parametrize(
    "line", ["endscript", "    endscript", "endscript;", "endscript # done", "\tendscript x"]
)
def test_a_postrotate_line_logrotate_reads_as_endscript_is_refused(line):
    found = problems(app(postrotate=f"true\n{line}\n}}\n/var/log/x.log {{\n    postrotate\n"))
    assert found[0].startswith("log set 'app': postrotate line 2 ")
    assert "would end the script there" in found[0]


@pytest.mark.parametrize("line", ["echo endscript", "ENDSCRIPT", "endscripts_dir=/x"])
def test_endscript_elsewhere_in_a_line_is_kept(line):
    assert problems(app(prerotate=line)) == []


def test_lone_braces_in_a_script_are_refused():
    found = problems(app(prerotate="{\ntrue\n  }  "))
    assert found == [
        "log set 'app': prerotate line 1 is a lone '{', which logrotate reads as a block "
        "boundary in configuration; keep braces on the line of their command",
        "log set 'app': prerotate line 3 is a lone '}', which logrotate reads as a block "
        "boundary in configuration; keep braces on the line of their command",
    ]


@pytest.mark.parametrize(
    "path", ["/var/log/{a,b}.log", "/var/log/a}.log", "/var/log/a.log\n/etc/x"]
)
def test_paths_with_braces_or_line_breaks_are_refused(path):
    found = problems(app(paths=[path]))
    assert len(found) == 1
    assert found[0].startswith(f"log set 'app': path {path!r} contains ")


@pytest.mark.parametrize("key", ["size", "maxsize", "minsize", "su", "create"])
def test_one_line_values_with_line_breaks_or_braces_are_refused(key):
    found = problems(app(**{key: "x\n}\n/var/log/y.log {"}))
    assert found == [
        f"log set 'app': {key} 'x\\n}}\\n/var/log/y.log {{' contains a line break and '{{' "
        "and '}', which would end the set's block and start new configuration"
    ]


def test_options_that_break_the_block_or_open_a_script_are_refused():
    found = problems(app(options=["rotate 5", "}", "postrotate", "maxage 7\nfoo"]))
    assert len(found) == 3
    assert "option 2 '}' contains '}'" in found[0]
    assert "option 3 'postrotate' opens or closes a script" in found[1]
    assert "option 4 'maxage 7\\nfoo' contains a line break" in found[2]


def test_existing_checks_still_apply():
    assert problems(
        {"name": "bad name", "paths": ["/x"]},
        {"name": "dup", "paths": ["relative.log"]},
        {"name": "dup", "paths": ["/y"]},
        {"name": "empty"},
    ) == [
        "log set name 'bad name' must match [A-Za-z0-9_-]+",
        "log set 'dup': path 'relative.log' must be absolute and contain no double quote",
        "log set name 'dup' is declared more than once",
        "log set 'empty' has no paths",
    ]


def test_sets_declared_absent_are_removed_only_outside_check_mode(tmp_path):
    (tmp_path / "legacy").write_text("/var/log/legacy.log {}\n")
    (tmp_path / "keep").write_text("/var/log/keep.log {}\n")
    absent = [{"name": "legacy"}, {"name": "never-installed"}]
    removed, diffs = plan.remove_absent(absent, str(tmp_path), check=True)
    assert removed == ["legacy"] and (tmp_path / "legacy").exists()
    assert diffs == [
        {
            "before": {"path": str(tmp_path / "legacy"), "state": "file"},
            "after": {"path": str(tmp_path / "legacy"), "state": "absent"},
        }
    ]
    assert plan.remove_absent(absent, str(tmp_path), check=False)[0] == ["legacy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    assert plan.remove_absent(absent, str(tmp_path), check=False) == ([], [])


def test_the_base_defaults_complete_a_set_given_only_the_roles_variables():
    role = {"frequency": "daily", "rotate": 30, "create": True}
    merged = plan.merge(
        [{"name": "app", "paths": ["/var/log/app.log"]}], {**plan.BASE_DEFAULTS, **role}, PRESETS
    )
    assert plan.problems(merged, PRESETS) == []
    assert merged[0]["state"] == "present" and merged[0]["options"] == []
    assert merged[0]["copytruncate"] is False and merged[0]["frequency"] == "daily"


def test_the_check_script_survives_sh_c_quoting_and_validates_percent():
    """roles/log_rotation/files/logrotate-check.sh goes to sh -c between single quotes and
    through Python's % operator (the template task's validate): neither may appear in it."""
    script = (Path(__file__).parents[2] / "roles/log_rotation/files/logrotate-check.sh").read_text()
    assert "'" not in script and "%" not in script
