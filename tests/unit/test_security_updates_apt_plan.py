"""plugins/modules/security_updates_apt.py, action=plan: which upgrade is a security one, which
version is installed, what a hold refuses, what needs a reboot or a restart.

python3-apt (apt_pkg) is not on this machine and no repository is: ``FakeApt`` stands in for
apt_pkg's cache with the packages, versions and origins of each test (and, for the simulation
of installing one package, what apt would pull along). molecule/security_updates proves the real
apt against a real repository; /proc, reboot-required and the module's arguments are real here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types

import pytest
from ansible_collections.opsplay.ops.plugins.modules import security_updates_apt as sua

from .module_harness import run_main

DEBIAN_SECURITY = {"origin": "Debian", "label": "Debian-Security"}
UBUNTU_SECURITY = {"origin": "Ubuntu", "archive": "*-security"}
ORIGINS = [DEBIAN_SECURITY, UBUNTU_SECURITY]  # the role's default security_updates_security_origins
HOLD = 3


def release(origin="Debian", label="Debian", archive="stable", codename="bookworm", site="deb"):
    return types.SimpleNamespace(
        origin=origin, label=label, archive=archive, codename=codename, site=site
    )


MAIN = release()
SECURITY = release(label="Debian-Security", archive="stable-security", codename="bookworm-security")
STATUS = release(origin="", label="", archive="now", codename="", site="")  # dpkg's status file


class Version:
    def __init__(self, ver_str, *releases):
        self.ver_str = ver_str
        self.file_list = [(r, 0) for r in releases]


class Package:
    def __init__(self, ident, name, current, versions, candidate, selected_state=1):
        self.id, self.name = ident, name
        self.current_ver = versions.get(current) if current else None
        self.version_list = list(versions.values())
        self.candidate = versions.get(candidate)
        self.selected_state = selected_state

    def get_fullname(self, pretty):
        return self.name


class FakeApt(types.ModuleType):
    """apt_pkg as far as the module uses it. ``pulls`` maps (package, version) to what apt's
    resolver would do when that version is installed alone: {"upgrade": [...], "delete": [...],
    "broken": bool}."""

    SELSTATE_HOLD = HOLD

    def __init__(self, packages, pulls=None):
        super().__init__("apt_pkg")
        self.packages, self.pulls = packages, dict(pulls or {})
        self.simulated = []
        fake = self

        class Cache:
            def __init__(self, progress):
                self.packages = fake.packages

            def __getitem__(self, name):
                for pkg in fake.packages:
                    if pkg.name == name:
                        return pkg
                raise KeyError(name)

        class DepCache:
            def __init__(self, cache):
                self.cache, self.chosen, self.effect = cache, {}, {}

            def get_candidate_ver(self, pkg):
                return pkg.candidate

            def set_candidate_ver(self, pkg, version):
                self.chosen[pkg.id] = version

            def mark_install(self, pkg, auto_inst, from_user):
                version = self.chosen.get(pkg.id, pkg.candidate)
                fake.simulated.append((pkg.name, version.ver_str))
                self.effect = fake.pulls.get((pkg.name, version.ver_str), {})

            @property
            def broken_count(self):
                return 1 if self.effect.get("broken") else 0

            def marked_upgrade(self, other):
                return other.name in self.effect.get("upgrade", ())

            def marked_delete(self, other):
                return other.name in self.effect.get("delete", ())

        self.Cache, self.DepCache = Cache, DepCache

    def init(self):
        pass

    @staticmethod
    def version_compare(a, b):
        """Enough of Debian's order for these tests' versions (1.0-1 < 1.0-1+deb12u1 < 1.1-1)."""
        ka, kb = ([int(n) for n in re.findall(r"\d+", v)] for v in (a, b))
        return (ka > kb) - (ka < kb)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """No reboot asked for and no process running replaced libraries, unless a test says so."""
    monkeypatch.setattr(sua, "REBOOT_REQUIRED", str(tmp_path / "reboot-required"))
    monkeypatch.setattr(sua, "outdated_services", lambda: ([], []))
    return tmp_path


def plan(monkeypatch, packages, pulls=None, **args):
    apt = FakeApt(packages, pulls)
    monkeypatch.setitem(sys.modules, "apt_pkg", apt)
    args.setdefault("security_origins", ORIGINS)
    rc, result = run_main(sua, dict(action="plan", **args))
    assert rc == 0, result
    return result, apt


def openssl_pkg(ident=1, **kw):
    """openssl 3.0.11-1 installed; 3.0.11-1+deb12u1 from bookworm-security; 3.0.13-1 from main
    (the candidate, as a newer point release would be)."""
    versions = {  # newest first, as apt lists them
        "3.0.13-1": Version("3.0.13-1", MAIN),
        "3.0.11-1+deb12u1": Version("3.0.11-1+deb12u1", SECURITY),
        "3.0.11-1": Version("3.0.11-1", STATUS, MAIN),
    }
    return Package(ident, "openssl", "3.0.11-1", versions, kw.pop("candidate", "3.0.13-1"), **kw)


def test_security_mode_installs_the_newest_security_version_not_the_candidate(host, monkeypatch):
    result, apt = plan(monkeypatch, [openssl_pkg()])
    assert result["upgrades"] == [{"name": "openssl", "from": "3.0.11-1", "to": "3.0.11-1+deb12u1"}]
    assert result["install"] == ["openssl=3.0.11-1+deb12u1"]
    assert result["pending_security"] == [
        {
            "name": "openssl",
            "from": "3.0.11-1",
            "candidate": "3.0.13-1",
            "origin": "Debian/stable",
            "security": "3.0.11-1+deb12u1",
        }
    ]
    assert result["pending_other"] == [] and result["blocked"] == [] and result["held"] == []
    assert result["installed"] == {"openssl": "3.0.11-1"}
    assert result["changed"] is False
    assert apt.simulated == [("openssl", "3.0.11-1+deb12u1")]  # the version it would install


def test_all_mode_installs_the_candidate(host, monkeypatch):
    result, _ = plan(monkeypatch, [openssl_pkg()], mode="all")
    assert result["install"] == ["openssl=3.0.13-1"]


def test_the_newest_of_several_security_versions_is_chosen(host, monkeypatch):
    versions = {
        "1.0-1": Version("1.0-1", STATUS),
        # listed out of order: the module must compare, not take the first
        "1.0-1+deb12u1": Version("1.0-1+deb12u1", SECURITY),
        "1.0-1+deb12u3": Version("1.0-1+deb12u3", SECURITY),
        "1.0-1+deb12u2": Version("1.0-1+deb12u2", SECURITY),
    }
    pkg = Package(1, "libc6", "1.0-1", versions, "1.0-1+deb12u3")
    result, _ = plan(monkeypatch, [pkg])
    assert result["install"] == ["libc6=1.0-1+deb12u3"]
    assert result["pending_security"][0]["security"] == "1.0-1+deb12u3"


@pytest.mark.parametrize(
    ("newer", "is_security"),
    [
        (release(origin="Ubuntu", label="Ubuntu", archive="jammy-security"), True),
        (release(origin="Ubuntu", label="Ubuntu", archive="jammy-updates"), False),
        # every field of a pattern must match: the label alone is not enough
        (release(origin="Devuan", label="Debian-Security"), False),
        # case-sensitive, as apt's own origin matching
        (release(origin="debian", label="debian-security"), False),
    ],
)
def test_security_origin_matching(host, monkeypatch, newer, is_security):
    versions = {"1-1": Version("1-1", STATUS), "1-2": Version("1-2", newer)}
    result, _ = plan(monkeypatch, [Package(1, "curl", "1-1", versions, "1-2")])
    assert bool(result["pending_security"]) is is_security
    assert bool(result["pending_other"]) is not is_security
    # security mode installs security upgrades only
    assert result["install"] == (["curl=1-2"] if is_security else [])


def test_no_security_origins_means_no_security_upgrade(host, monkeypatch):
    result, _ = plan(monkeypatch, [openssl_pkg()], security_origins=[])
    assert result["pending_security"] == [] and result["install"] == []
    assert result["pending_other"][0]["name"] == "openssl"


def test_held_packages_are_never_upgraded(host, monkeypatch):
    marked = openssl_pkg(1, selected_state=HOLD)  # apt-mark hold
    versions = {"2-1": Version("2-1", STATUS), "2-1+deb12u1": Version("2-1+deb12u1", SECURITY)}
    listed = Package(2, "nginx", "2-1", versions, "2-1+deb12u1")  # security_updates_hold
    result, apt = plan(monkeypatch, [marked, listed], hold=["nginx"], mode="all")
    assert result["held"] == ["nginx", "openssl"]
    assert result["upgrades"] == [] and result["install"] == []
    # still reported as pending: a person has to decide
    assert [e["name"] for e in result["pending_security"]] == ["openssl", "nginx"]
    assert apt.simulated == []


def test_an_upgrade_that_would_change_or_remove_a_held_package_is_blocked(host, monkeypatch):
    versions = {"1-1": Version("1-1", STATUS), "1-1+deb12u1": Version("1-1+deb12u1", SECURITY)}
    libssl = Package(1, "libssl3", "1-1", versions, "1-1+deb12u1")
    libcurl = Package(2, "libcurl4", "1-1", dict(versions), "1-1+deb12u1")
    held = Package(3, "openssl", "1-1", {"1-1": Version("1-1", STATUS)}, "1-1", HOLD)
    zlib = Package(4, "zlib1g", "1-1", dict(versions), "1-1+deb12u1")
    pulls = {
        ("libssl3", "1-1+deb12u1"): {"upgrade": ["libssl3", "openssl"]},
        ("libcurl4", "1-1+deb12u1"): {"delete": ["openssl"]},
        ("zlib1g", "1-1+deb12u1"): {"upgrade": ["zlib1g"]},
    }
    # a hold-list entry that is no known package is ignored, not an error
    result, _ = plan(monkeypatch, [libssl, libcurl, held, zlib], pulls, hold=["not-a-package"])
    assert result["blocked"] == [
        {"name": "libssl3", "to": "1-1+deb12u1", "reason": "it would change held package openssl"},
        {"name": "libcurl4", "to": "1-1+deb12u1", "reason": "it would change held package openssl"},
    ]
    assert result["install"] == ["zlib1g=1-1+deb12u1"]


def test_an_upgrade_whose_dependencies_cannot_be_satisfied_is_blocked(host, monkeypatch):
    pulls = {("openssl", "3.0.11-1+deb12u1"): {"broken": True}}
    result, _ = plan(monkeypatch, [openssl_pkg()], pulls)
    assert result["blocked"] == [
        {
            "name": "openssl",
            "to": "3.0.11-1+deb12u1",
            "reason": "its dependencies cannot be satisfied",
        }
    ]
    assert result["upgrades"] == [] and result["install"] == []


def test_not_installed_up_to_date_and_pinned_below_are_left_alone(host, monkeypatch):
    versions = {"1-1": Version("1-1", STATUS, MAIN), "1-2": Version("1-2", SECURITY)}
    absent = Package(1, "absent", None, versions, "1-2")
    current = Package(2, "current", "1-2", dict(versions), "1-2")
    pinned = Package(3, "pinned", "1-1", dict(versions), "1-1")  # candidate pinned to the current
    nothing = Package(4, "nothing", "1-1", dict(versions), None)  # no candidate at all
    result, apt = plan(monkeypatch, [absent, current, pinned, nothing])
    assert result["installed"] == {"current": "1-2", "pinned": "1-1", "nothing": "1-1"}
    assert result["pending_security"] == result["pending_other"] == result["upgrades"] == []
    assert apt.simulated == []


def test_the_origin_shown_is_the_candidate_repository_or_local(host, monkeypatch):
    codename_only = release(origin="Debian", archive="", codename="bookworm-updates")
    local = {"1-1": Version("1-1", STATUS), "1-2": Version("1-2", STATUS)}
    named = {"1-1": Version("1-1", STATUS), "1-2": Version("1-2", STATUS, codename_only)}
    packages = [Package(1, "local", "1-1", local, "1-2"), Package(2, "named", "1-1", named, "1-2")]
    result, _ = plan(monkeypatch, packages)
    assert [(e["name"], e["origin"]) for e in result["pending_other"]] == [
        ("local", "local"),
        ("named", "Debian/bookworm-updates"),
    ]


def test_reboot_required_and_the_services_to_restart(host, monkeypatch):
    (host / "reboot-required").write_text("*** System restart required ***\n")
    (host / "reboot-required.pkgs").write_text("linux-image-amd64\nlibc6\n\nlibc6\n")
    units = ["nginx.service", "systemd-logind.service"]
    monkeypatch.setattr(sua, "outdated_services", lambda: (units, ["sshd (pid 7)"]))
    result, _ = plan(monkeypatch, [], restart_exclude=["systemd-logind.service"])
    assert result["reboot_required"] is True
    assert result["reboot_packages"] == ["libc6", "linux-image-amd64"]
    assert result["outdated_services"] == units
    assert result["restart"] == ["nginx.service"]
    assert result["outdated_processes"] == ["sshd (pid 7)"]


def test_reboot_state(host):
    assert sua.reboot_state() == (False, [])
    (host / "reboot-required").write_text("")
    assert sua.reboot_state() == (True, [])  # no .pkgs file: a reboot, packages unknown


def test_without_python3_apt_the_plan_fails_in_one_line(host, monkeypatch):
    monkeypatch.setitem(sys.modules, "apt_pkg", None)  # import apt_pkg raises ImportError
    rc, result = run_main(sua, {"action": "plan"})
    assert rc == 1
    assert result["msg"] == "python3-apt is not installed on the host (apt install python3-apt)"


# --- processes running replaced libraries: real processes, this machine's /proc -----------------

HOLDER = """
import mmap, os, sys
handle = open(sys.argv[1], "rb")
mapped = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
os.unlink(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def mapping_process(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 4096)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_a_process_mapping_a_replaced_library_is_found(tmp_path, monkeypatch):
    """Two real processes map a file that is then deleted: the one under a library prefix runs
    old code, the one under a data directory does not. Outside a systemd unit (this machine's
    cgroups name none) a process is listed by its name and pid."""
    monkeypatch.setattr(sua, "LIBRARY_PREFIXES", (str(tmp_path / "usr") + "/",))
    stale = mapping_process(tmp_path / "usr" / "lib" / "libold.so.1")
    data = mapping_process(tmp_path / "data" / "cache.bin")
    try:
        units, others = sua.outdated_services()
        with open(f"/proc/{stale.pid}/comm") as comm:
            name = comm.read().strip()
    finally:
        for proc in (stale, data):
            proc.stdin.close()
            proc.wait()
    assert f"{name} (pid {stale.pid})" in others
    assert not any(f"(pid {data.pid})" in entry for entry in others)
    assert units == [] or all(u.endswith(".service") for u in units)


def test_a_process_of_a_systemd_unit_is_listed_as_its_unit(tmp_path, monkeypatch):
    """A /proc tree in tmp_path (this machine runs no systemd): the unit is the last .service of
    the process's cgroup path, a process without a readable maps file is skipped."""
    proc = tmp_path / "proc"
    for pid, maps, cgroup in (
        ("10", "7f00-7f01 r-xp 0 08:01 5 /usr/lib/libssl.so.3 (deleted)\n",
         "0::/system.slice/nginx.service\n"),
        ("11", "7f00-7f01 r-xp 0 08:01 5 /usr/lib/libssl.so.3\n", "0::/system.slice/ok.service\n"),
        ("12", "7f00-7f01 r-xp 0 08:01 5 /lib/x86_64-linux-gnu/libc.so.6 (deleted)\n",
         "0::/user.slice/user@0.service/app.slice/worker.service\n"),
        ("13", "7f00-7f01 rw-p 0 00:00 0 /tmp/x (deleted)\n", "0::/system.slice/tmp.service\n"),
    ):  # fmt: skip
        (proc / pid).mkdir(parents=True)
        (proc / pid / "maps").write_text(maps)
        (proc / pid / "cgroup").write_text(cgroup)
    (proc / "14").mkdir()  # gone: no maps
    (proc / "self").mkdir()
    real_listdir, real_open = sua.os.listdir, open

    def listdir(path):
        return real_listdir(proc if path == "/proc" else path)

    def redirected(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            path = str(proc) + str(path)[len("/proc") :]
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(sua.os, "listdir", listdir)
    monkeypatch.setattr(sua, "open", redirected, raising=False)
    assert sua.outdated_services() == (["nginx.service", "worker.service"], [])
