"""plugins/modules/maintenance_mode_nginx.py installing the snippet and its includes (main() in
this process) on a real nginx directory tree in tmp_path: what ends up on disk, with which mode,
and that nothing failing the configuration test stays installed - whether our snippet is bad or
a broken configuration was already on the host.

nginx is not installed here: ``test_command`` (an option of the module) is a stand-in for
``nginx -t`` that reads the tree as nginx would (every include must exist, every directive be
known) and words its errors as nginx does. molecule/maintenance_mode proves the real nginx -t
and reload.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.modules import maintenance_mode_nginx as module

from .module_harness import run_main

FAKE_NGINX_T = r"""
import os, re, sys
root, log = sys.argv[1], sys.argv[2]
with open(log, "a") as handle:
    handle.write("nginx -t\n")
KNOWN = {"server", "listen", "server_name", "root", "location", "include", "if", "return",
         "index", "try_files", "}", "http", "events", "worker_connections", "error_page"}
def fail(message):
    print("nginx: [emerg] " + message)
    print("nginx: configuration file %s/nginx.conf test failed" % root)
    sys.exit(1)
def check(path):
    try:
        lines = open(path).read().splitlines()
    except OSError as exc:
        fail('open() "%s" failed (%s)' % (path, exc.strerror))
    for number, line in enumerate(lines, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] not in KNOWN:
            fail('unknown directive "%s" in %s:%d' % (words[0], path, number))
        if words[0] == "include":
            target = words[1].rstrip(";")
            magic = __import__("glob").has_magic(target)
            for found in sorted(__import__("glob").glob(target)) if magic else [target]:
                check(found)
check(os.path.join(root, "nginx.conf"))
print("nginx: the configuration file %s/nginx.conf syntax is ok" % root)
print("nginx: configuration file %s/nginx.conf test is successful" % root)
"""
SNIPPET = "if (-f /var/lib/opsplay/maintenance.flag) { return 503; }\n"
SITE = "server {\n    listen 80;\n    root /srv/www;\n}\n"


class Tree:
    """/etc/nginx in tmp_path: nginx.conf includes conf.d/*.conf and sites-enabled/*; the site
    default is sites-enabled/default -> ../sites-available/default, mode 0640."""

    def __init__(self, base: Path):
        self.root = base / "nginx"
        self.log = base / "nginx-t.log"
        for sub in ("conf.d", "sites-available", "sites-enabled", "snippets"):
            (self.root / sub).mkdir(parents=True)
        (self.root / "nginx.conf").write_text(
            "events {\n}\nhttp {\n"
            f"include {self.root}/conf.d/*.conf;\ninclude {self.root}/sites-enabled/*;\n}}\n"
        )
        self.site = self.root / "sites-available" / "default"
        self.site.write_text(SITE)
        self.site.chmod(0o640)
        self.enabled = self.root / "sites-enabled" / "default"
        self.enabled.symlink_to("../sites-available/default")
        self.snippet = self.root / "snippets" / "opsplay-maintenance.conf"
        self.script = base / "nginx-t.py"
        self.script.write_text(FAKE_NGINX_T)

    def args(self, **kw):
        base = {
            "snippet_path": str(self.snippet),
            "snippet_content": SNIPPET,
            "sites": [str(self.enabled)],
            "test_command": [sys.executable, str(self.script), str(self.root), str(self.log)],
        }
        return dict(base, **kw)

    def tests_run(self):
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def state(self):
        """Every file of the tree: path -> (bytes or link target, mode)."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink():
                found[str(path)] = ("-> " + os.readlink(path), None)
            elif path.is_file():
                found[str(path)] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        return found

    def leftovers(self):
        return [p for p in self.root.rglob(".opsplay-*")]


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path)


def test_the_snippet_and_the_include_are_installed_with_a_passing_test(tree):
    rc, result = run_main(module, tree.args())
    assert rc == 0, result
    assert result["changed"] is True
    assert result["files"] == sorted([str(tree.site), str(tree.snippet)])
    assert tree.snippet.read_text() == SNIPPET
    assert stat.S_IMODE(tree.snippet.stat().st_mode) == 0o644  # a new file: 0644
    assert tree.site.read_text() == (
        f"server {{\n    include {tree.snippet};\n    listen 80;\n    root /srv/www;\n}}\n"
    )
    assert stat.S_IMODE(tree.site.stat().st_mode) == 0o640  # kept
    assert tree.enabled.is_symlink()  # the file behind the link changed, not the link
    assert tree.tests_run() == 1 and tree.leftovers() == []


def test_a_second_run_changes_nothing_and_runs_no_test(tree):
    run_main(module, tree.args())
    before = tree.state()
    rc, result = run_main(module, tree.args())
    assert rc == 0 and result["changed"] is False and result["files"] == []
    assert tree.state() == before and tree.tests_run() == 1


def test_a_snippet_failing_the_test_is_not_installed(tree):
    before = tree.state()
    rc, result = run_main(module, tree.args(snippet_content="retrun 503;\n"))
    assert rc == 1
    assert result["msg"] == (
        f'nginx -t failed: unknown directive "retrun" in {tree.snippet}:1'
        f" ({tree.site}, {tree.snippet} left as they were)"
    )
    assert tree.state() == before  # the new snippet removed again, the site's bytes and mode back
    assert not tree.snippet.exists() and tree.leftovers() == []


def test_a_broken_configuration_already_on_the_host_keeps_ours_out(tree):
    """Someone left a broken file in conf.d: nginx -t fails whatever we write, so our change is
    not left in place (a reload would then fail on it too); an older snippet is put back with
    its own mode."""
    (tree.root / "conf.d" / "broken.conf").write_text("gzip_typo on;\n")
    tree.snippet.write_text("# the previous snippet\n")
    tree.snippet.chmod(0o600)
    before = tree.state()
    rc, result = run_main(module, tree.args())
    assert rc == 1
    assert result["msg"].startswith(
        f'nginx -t failed: unknown directive "gzip_typo" in {tree.root}/conf.d/broken.conf:1 ('
    )
    assert tree.state() == before and tree.leftovers() == []
    assert result["files"] == sorted([str(tree.site), str(tree.snippet)])


def test_check_mode_names_the_files_and_writes_nothing(tree):
    before = tree.state()
    rc, result = run_main(module, tree.args(), check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert result["files"] == sorted([str(tree.site), str(tree.snippet)])
    assert tree.state() == before and tree.tests_run() == 0


def test_a_site_that_is_missing_or_has_no_server_block_fails_before_writing(tree):
    other = tree.root / "sites-available" / "stream"
    other.write_text("# upstreams only\n")
    missing = str(tree.root / "sites-enabled" / "gone")
    before = tree.state()
    rc, result = run_main(module, tree.args(sites=[str(tree.enabled), missing, str(other)]))
    assert rc == 1
    assert result["msg"] == (
        f"nginx site {missing} does not exist; "
        f"nginx site {other} has no 'server {{' line to include the snippet in"
    )
    assert tree.state() == before and tree.tests_run() == 0


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        ("rm -rf {sites}; touch {sites}", "Not a directory"),  # its directory is a file now
        ("rm {site}; mkdir {site}; touch {site}/x", "Is a directory"),  # it is a directory now
    ],
)
def test_a_file_that_cannot_be_put_back_is_named(tree, tmp_path, breaks, reason):
    """The test itself breaks the tree: the site cannot be restored and the message says so;
    the new snippet is still removed, and no temporary file is left behind."""
    breaker = tmp_path / "breaker.sh"
    command = breaks.format(sites=tree.site.parent, site=tree.site)
    breaker.write_text(f"#!/bin/sh\n{command}\necho 'nginx: [emerg] boom'\nexit 1\n")
    breaker.chmod(0o755)
    rc, result = run_main(module, tree.args(test_command=[str(breaker)]))
    assert rc == 1
    assert result["msg"] == f"nginx -t failed: boom; could NOT restore {tree.site} ({reason})"
    assert not tree.snippet.exists() and tree.leftovers() == []


def test_a_file_that_cannot_be_written_puts_back_what_was_written(tree):
    """The snippet's directory does not exist: the write fails, nothing stays changed."""
    snippet = tree.root / "no-such-dir" / "opsplay-maintenance.conf"
    before = tree.state()
    rc, result = run_main(module, tree.args(snippet_path=str(snippet)))
    assert rc == 1
    assert result["msg"].startswith("writing the nginx files failed: [Errno 2] No such file")
    assert result["msg"].endswith(f"({snippet}, {tree.site} left as they were)")  # sorted
    assert tree.state() == before and tree.tests_run() == 0


def test_a_test_command_that_does_not_exist_installs_nothing(tree):
    before = tree.state()
    rc, result = run_main(module, tree.args(test_command=[str(tree.root / "no-nginx"), "-t"]))
    assert rc == 1
    assert "no-nginx" in result["msg"] and result["msg"].endswith("left as they were)")
    assert tree.state() == before and tree.leftovers() == []


def test_a_snippet_path_that_is_a_directory_is_one_line(tree):
    before = tree.state()
    with_dir = tree.args(snippet_path=str(tree.snippet.parent))  # the directory, not the file
    try:
        rc, result = run_main(module, with_dir)
    finally:
        assert tree.state() == before
    assert rc == 1 and str(tree.snippet.parent) in result["msg"]
