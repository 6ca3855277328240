"""pg_maintenance_tables with os_user (the role's pg_maintenance_become_user): as root the
PostgreSQL work runs in a forked child dropped to that user, and its report comes back whole;
as any other user nothing is done and the result asks for become (issue 20: no second
interpreter on the host for a run). The fake psycopg2 is inherited by the child."""

from __future__ import annotations

import os
import pwd

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import os_user
from ansible_collections.opsplay.ops.plugins.modules import pg_maintenance_tables as tables

from .module_harness import run_main
from .test_pg_maintenance_tables_run import BLOATED, QUIET, Server, args


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_as_root_the_work_runs_as_the_os_user_and_its_report_comes_back(monkeypatch):
    server = Server({"app": (BLOATED, []), "shop": (QUIET, [])})
    server.pg.install(monkeypatch)
    seen = []
    real_run = tables.run

    def run_and_record(module):
        seen.append((os.getpid(), os.geteuid()))  # in the child: the parent never sees it
        result = real_run(module)
        result["ran_as"] = [os.getpid(), os.geteuid()]
        return result

    monkeypatch.setattr(tables, "run", run_and_record)
    rc, result = run_main(tables, args("vacuum", os_user="nobody"))
    assert rc == 0, result
    assert result["ran_as"][1] == pwd.getpwnam("nobody").pw_uid
    assert result["ran_as"][0] != os.getpid() and seen == []
    assert result["msg"] == (
        "vacuum (targeted): app: vacuumed public.orders | shop: vacuumed nothing"
    )
    assert result["report"]["databases"][0]["actions"]["vacuumed"] == ["public.orders"]
    assert server.pg.log == []  # every statement was the child's


def test_as_another_user_nothing_is_done_and_become_is_asked_for(monkeypatch):
    server = Server({"app": (BLOATED, [])})
    server.pg.install(monkeypatch)
    monkeypatch.setattr(os_user.os, "geteuid", lambda: 4242)
    rc, result = run_main(tables, args("vacuum", os_user="nobody"))
    assert rc == 0, result
    assert result["needs_become"] is True and result["changed"] is False
    assert "report" not in result and server.pg.log == []


def test_a_failure_in_the_child_is_the_module_failure(monkeypatch):
    server = Server({"app": (BLOATED, [])}, errors={"SERVER": "connection refused"})
    server.pg.install(monkeypatch)
    me = "nobody" if os.geteuid() == 0 else ""
    rc, result = run_main(tables, args("vacuum", os_user=me))
    assert rc == 1 and result["failed"]
    assert "connection refused" in result["msg"]
