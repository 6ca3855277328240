"""plugins/modules/security_updates_apt.py, action=recover: wait for dpkg's lock, finish an
interrupted dpkg run, fail in one line when that does not work; action=prepare: that, then
refresh the package lists (python3-apt's Cache.update, a recorded stand-in here) and plan.

The locks are real fcntl locks held by a real process on files in tmp_path. dpkg is replaced by
a recorded fake on PATH (a script that logs its arguments, answers ``--audit`` from a state file
and "configures" by emptying it or failing as told): this machine's own dpkg must not be touched.
molecule/security_updates proves the real dpkg on a host with an interrupted run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
from ansible_collections.opsplay.ops.plugins.modules import security_updates_apt as sua

from .module_harness import run_main
from .test_security_updates_apt_plan import ORIGINS, FakeApt, openssl_pkg

AUDIT_HEAD = (
    "The following packages are only half configured, probably due to problems\n"
    "configuring them the first time.  The configuration should be retried using\n"
    "dpkg --configure <package> or the configure menu option in dselect:\n"
)
FAKE_DPKG = """#!/bin/sh
echo "$*" >> "$FAKE_DPKG_LOG"
case "$1" in
  --audit)
    if [ -s "$FAKE_DPKG_STATE" ]; then printf '%s' "$FAKE_AUDIT_HEAD"; cat "$FAKE_DPKG_STATE"; fi
    ;;
  --configure)
    if [ -n "$FAKE_CONFIGURE_FAILS" ]; then
      echo "Setting up libfoo (1.0) ..." ; echo "$FAKE_CONFIGURE_FAILS" >&2 ; exit 1
    fi
    [ -n "$FAKE_CONFIGURE_LEAVES" ] || : > "$FAKE_DPKG_STATE"
    rm -f "$FAKE_DPKG_UPDATES"/[0-9]*  # dpkg applies and removes its journal entries
    ;;
esac
"""


@pytest.fixture
def dpkg(tmp_path, monkeypatch):
    """A fake dpkg first on PATH; dpkg's lock files and journal directory in tmp_path. Returns
    (log file, state file): the state file holds the audit's package lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg").write_text(FAKE_DPKG)
    (bin_dir / "dpkg").chmod(0o755)
    log, state = tmp_path / "dpkg.log", tmp_path / "dpkg.state"
    state.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DPKG_LOG", str(log))
    monkeypatch.setenv("FAKE_DPKG_STATE", str(state))
    monkeypatch.setenv("FAKE_AUDIT_HEAD", AUDIT_HEAD)
    monkeypatch.setenv("FAKE_DPKG_UPDATES", str(tmp_path / "updates"))
    locks = (str(tmp_path / "lock-frontend"), str(tmp_path / "lock"))
    monkeypatch.setattr(sua, "DPKG_LOCKS", locks)
    monkeypatch.setattr(sua, "DPKG_UPDATES", str(tmp_path / "updates"))
    return log, state


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_a_clean_host_is_left_alone(dpkg):
    log, _ = dpkg
    rc, result = run_main(sua, {"action": "recover", "lock_timeout": 0})
    assert rc == 0, result
    assert result["changed"] is False and result["recovered"] == [] and result["waited"] == 0.0
    assert calls(log) == ["--audit"]


def test_half_configured_packages_are_configured(dpkg):
    log, state = dpkg
    state.write_text(" libssl3              Secure Sockets Layer\n openssl  toolkit\n")
    rc, result = run_main(sua, {"action": "recover"})
    assert rc == 0, result
    assert result["changed"] is True and result["recovered"] == ["libssl3", "openssl"]
    assert calls(log) == [
        "--audit",
        "--configure -a --force-confdef --force-confold",
        "--audit",  # read again: nothing is left half-done
    ]


def test_a_pending_journal_alone_is_recovered(dpkg, tmp_path):
    log, _ = dpkg
    (tmp_path / "updates").mkdir()
    (tmp_path / "updates" / "tmp.i").write_text("")  # not a journal entry
    assert sua.interrupted_packages() == []
    log.unlink()
    (tmp_path / "updates" / "0003").write_text("")
    rc, result = run_main(sua, {"action": "recover"})
    assert rc == 0, result
    assert result["recovered"] == ["(dpkg journal)"] and result["changed"] is True
    assert calls(log) == ["--audit", "--configure -a --force-confdef --force-confold", "--audit"]
    assert os.listdir(tmp_path / "updates") == ["tmp.i"]


def test_check_mode_reports_and_configures_nothing(dpkg):
    log, state = dpkg
    state.write_text(" libssl3 Secure Sockets Layer\n")
    rc, result = run_main(sua, {"action": "recover"}, check_mode=True)
    assert rc == 0, result
    assert result["changed"] is True and result["recovered"] == ["libssl3"]
    assert calls(log) == ["--audit"]


def test_a_failing_dpkg_configure_fails_with_its_last_line(dpkg, monkeypatch):
    log, state = dpkg
    state.write_text(" libfoo broken\n")
    stderr = (
        "libfoo.postinst: cannot create /etc/foo.conf\n"
        "dpkg: error processing package libfoo (--configure): subprocess returned exit status 1"
    )
    monkeypatch.setenv("FAKE_CONFIGURE_FAILS", stderr)
    rc, result = run_main(sua, {"action": "recover"})
    assert rc == 1
    assert result["msg"] == (  # dpkg's last line
        "dpkg --configure -a failed (exit 1): dpkg: error processing package libfoo"
        " (--configure): subprocess returned exit status 1"
    )
    assert result["recovered"] == ["libfoo"] and result["failed"] is True
    assert calls(log) == ["--audit", "--configure -a --force-confdef --force-confold"]


def test_packages_still_half_configured_afterwards_fail_the_module(dpkg, monkeypatch):
    log, state = dpkg
    state.write_text(" libfoo broken\n libbar broken\n")
    monkeypatch.setenv("FAKE_CONFIGURE_LEAVES", "1")
    rc, result = run_main(sua, {"action": "recover"})
    assert rc == 1
    assert result["msg"] == "dpkg --configure -a left packages half-configured: libbar, libfoo"
    assert calls(log) == ["--audit", "--configure -a --force-confdef --force-confold", "--audit"]


LOCKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_held_dpkg_lock_is_waited_for_then_a_timeout_in_one_line(dpkg, tmp_path):
    log, _ = dpkg
    (tmp_path / "lock-frontend").write_text("")  # exists, nobody holds it
    assert sua.lock_holder(str(tmp_path / "lock-frontend")) is False
    assert sua.lock_holder(str(tmp_path / "lock")) is False  # missing: nobody holds it
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(tmp_path / "lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        assert sua.lock_holder(str(tmp_path / "lock")) is True
        rc, result = run_main(sua, {"action": "recover", "lock_timeout": 0})
    finally:
        holder.stdin.close()
        holder.wait()
    assert rc == 1 and result["msg"] == "the dpkg lock is still held after 0 s"
    assert calls(log) == []  # dpkg is not asked anything while another apt/dpkg runs
    assert sua.lock_holder(str(tmp_path / "lock")) is False  # released with its process


# --- action=prepare: recover, refresh the lists, plan, in one call --------------------------------


class FakeAptCache(types.ModuleType):
    """python3-apt's ``apt`` as refresh_lists uses it: Cache().update(), recorded; ``fails``
    raises apt's FetchFailedException with that text, as an unreachable repository does."""

    def __init__(self, fails=""):
        super().__init__("apt")
        self.updates = 0
        fake = self

        class FetchFailedException(Exception):
            pass

        class LockFailedException(Exception):
            pass

        class Cache:
            def update(self):
                fake.updates += 1
                if fails:
                    raise FetchFailedException(fails)

        self.cache = types.SimpleNamespace(
            FetchFailedException=FetchFailedException, LockFailedException=LockFailedException
        )
        self.Cache = Cache


@pytest.fixture
def prepared(dpkg, tmp_path, monkeypatch):
    """A clean dpkg, the lists lock in tmp_path, an apt cache with one security upgrade."""
    monkeypatch.setattr(sua, "LISTS_LOCK", str(tmp_path / "lists-lock"))
    monkeypatch.setattr(sua, "REBOOT_REQUIRED", str(tmp_path / "reboot-required"))
    monkeypatch.setattr(sua, "outdated_services", lambda: (["nginx.service"], []))
    monkeypatch.setitem(sys.modules, "apt_pkg", FakeApt([openssl_pkg()]))
    apt = FakeAptCache()
    monkeypatch.setitem(sys.modules, "apt", apt)
    return apt


PREPARE = {"action": "prepare", "security_origins": ORIGINS, "lock_timeout": 0}


def test_prepare_recovers_refreshes_and_plans_in_one_call(prepared, dpkg):
    log, state = dpkg
    state.write_text(" libssl3 half configured\n")
    rc, result = run_main(sua, dict(PREPARE, refresh_lists=True))
    assert rc == 0, result
    assert result["recovered"] == ["libssl3"] and result["changed"] is True
    assert prepared.updates == 1
    assert result["install"] == ["openssl=3.0.11-1+deb12u1"]
    assert result["act"] is True and result["waited"] == 0.0
    assert calls(log)[1] == "--configure -a --force-confdef --force-confold"


def test_prepare_does_not_refresh_unless_asked_and_says_when_there_is_no_work(prepared):
    rc, result = run_main(sua, dict(PREPARE, mode="security", hold=["openssl"]))
    assert rc == 0, result
    assert prepared.updates == 0
    assert result["held"] == ["openssl"] and result["upgrades"] == []
    assert result["act"] is False  # nginx.service runs old libraries, but restarts are off
    rc, result = run_main(sua, dict(PREPARE, hold=["openssl"], restart_services=True))
    assert result["act"] is True and result["restart"] == ["nginx.service"]


def test_lists_that_cannot_be_fetched_fail_in_one_line(prepared, monkeypatch):
    monkeypatch.setitem(sys.modules, "apt", FakeAptCache("W:Failed to fetch http://deb/dists"))
    rc, result = run_main(sua, dict(PREPARE, refresh_lists=True))
    assert rc == 1
    assert (
        result["msg"] == "refreshing the package lists failed: W:Failed to fetch http://deb/dists"
    )


def test_a_held_lists_lock_fails_before_refreshing(prepared, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(tmp_path / "lists-lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        rc, result = run_main(sua, dict(PREPARE, refresh_lists=True))
    finally:
        holder.stdin.close()
        holder.wait()
    assert rc == 1 and result["msg"] == "the apt lists lock is still held after 0 s"
    assert prepared.updates == 0


def test_without_python3_apt_refreshing_fails_in_one_line(prepared, monkeypatch):
    monkeypatch.setitem(sys.modules, "apt", None)
    rc, result = run_main(sua, dict(PREPARE, refresh_lists=True))
    assert rc == 1
    assert result["msg"] == "python3-apt is not installed on the host (apt install python3-apt)"
