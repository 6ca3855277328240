from __future__ import annotations

from opsplay.inputs import parse_extra_vars


def test_pairs_files_and_mappings(tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("a: 1\n")
    values, files = parse_extra_vars(
        ("older_than=10m", "x=1 y=two", "@" + str(path), '{"force": true}')
    )
    assert values == {"older_than": "10m", "x": "1", "y": "two", "force": True}
    assert files == [path.resolve()]


def test_value_may_hold_equals_sign():
    values, _ = parse_extra_vars(("query=a=b",))
    assert values == {"query": "a=b"}
