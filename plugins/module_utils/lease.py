"""Host-side run leases (issue 18): one run at a time changes a host, whatever controller runs it.

The lease file, ``/var/lib/opsplay/lease.json`` (0644, JSON, replaced whole by rename)::

    {"controller": "bastion-1", "user": "alice", "run_id": "20261207-020001-ab12",
     "what": "maintenance weekly", "started": "2026-12-07T01:00:01Z",
     "expires": "2026-12-07T07:00:01Z", "lock": "/home/alice/.local/state/opsplay/locks/prod.lock"}

``lock`` (opsplay's runs only): the environment flock the run held on its controller. A run that
holds the same flock on the same controller now proves that run gone, and takes its lease over
(the next weekly after a SIGKILL, closing the window the killed run left).

Decisions (``decide_take``, ``decide_release``) are pure functions of the lease found, the one
asked for and the host's clock; ``take``/``release`` apply them under an ``flock`` of
``lease.json.lock`` beside it, so two controllers taking the same host at once cannot both win
(the second one reads the first one's lease). A lease past ``expires`` is free: a run that died
(SIGKILL, lost network, cancelled AWX job) blocks the host at most until then.
Standard library only; Python 3.8 compatible.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import tempfile

LEASE_PATH = "/var/lib/opsplay/lease.json"
DEFAULT_TTL = 6 * 3600  # seconds: the longest window (weekly + rollout) with room to spare
ISO = "%Y-%m-%dT%H:%M:%SZ"
FIELDS = ("controller", "user", "run_id", "what", "started", "expires")
IDENTITY = ("controller", "user", "run_id")


class LeaseError(Exception):
    """The lease file cannot be read or written (the message names it)."""


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(ISO)


def parse_iso(text):
    try:
        return datetime.datetime.strptime(str(text), ISO).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def describe(lease):
    """One line naming a lease's holder."""
    return "{user}@{controller} (run {run_id}, {what}) since {started}, until {expires}".format(
        **{k: lease.get(k, "?") for k in FIELDS}
    )


def same_holder(lease, identity):
    return all(str(lease.get(k, "")) == str(identity.get(k, "")) for k in IDENTITY)


def gone(lease, identity):
    """The lease of a run that is gone: taken under the same local lock (opsplay's environment
    flock, ``lock``: its path) on the same controller, which the taker holds now, so the run
    that took it no longer runs (killed, crashed). Only opsplay passes ``lock``, under the lock."""
    lock = identity.get("lock")
    return (
        bool(lock)
        and lease.get("lock") == lock
        and lease.get("controller") == identity.get("controller")
    )


def expired(lease, at):
    """A lease whose ``expires`` is at or before ``at`` (or unreadable: never, to be safe)."""
    until = parse_iso(lease.get("expires"))
    return until is not None and until <= at


def decide_take(current, identity, at, ttl):
    """(taken, new lease or None, one line). ``current`` is the lease found (None: none; the
    string "unreadable" for a file that is not a lease): free, expired or this run's own (same
    controller, user and run id: re-taking refreshes it) is taken; anything else is refused."""
    if current == "unreadable":
        return False, None, "refused: unreadable lease file (opsplay unlock removes it)"
    lease = dict((k, str(identity[k])) for k in ("controller", "user", "run_id", "what"))
    if identity.get("lock"):
        lease["lock"] = str(identity["lock"])
    lease["started"] = iso(at)
    lease["expires"] = iso(at + datetime.timedelta(seconds=int(ttl)))
    if current is None:
        return True, lease, "taken"
    if same_holder(current, identity):
        lease["started"] = current.get("started", lease["started"])
        return True, lease, "taken again by the same run"
    if expired(current, at):
        return True, lease, "taken (expired lease of " + describe(current) + ")"
    if gone(current, identity):
        return True, lease, "taken (lease of a run that is gone: " + describe(current) + ")"
    return False, None, "refused: held by " + describe(current)


def decide_release(current, identity, force=False):
    """(release, one line): this run's own lease is released; another's only with ``force``
    (opsplay unlock); none found: nothing to do."""
    if current is None:
        return False, "no lease"
    if current == "unreadable":
        return bool(force), "unreadable lease file" + (" removed" if force else " kept")
    if force or same_holder(current, identity):
        return True, "released lease of " + describe(current)
    return False, "kept lease of " + describe(current) + " (not this run's)"


def read(path):
    """The lease at ``path``: a dict, None when there is none, "unreadable" otherwise."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "unreadable"
    if not isinstance(data, dict) or any(k not in data for k in FIELDS):
        return "unreadable"
    return data


def write(path, lease):
    """Write ``lease`` to ``path`` atomically: a temporary file beside it, fsynced, renamed."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".lease.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(lease, handle, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_dir(directory)


def _sync_dir(directory):
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class _Locked:
    """An exclusive flock of PATH.lock while deciding and writing (waits: holders are short)."""

    def __init__(self, path):
        self.path = path + ".lock"
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock


def take(path, identity, ttl, at=None, check=False):
    """Apply ``decide_take`` on the host. Returns (taken, changed, lease found, lease now, line)."""
    at = at or now()
    directory = os.path.dirname(path) or "."
    if not check:
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise LeaseError("cannot create {}: {}".format(directory, exc.strerror)) from None
    if check and not os.path.isdir(directory):
        return _take_decided(None, identity, ttl, at, path, check)
    try:
        with _Locked(path):
            return _take_decided(read(path), identity, ttl, at, path, check)
    except OSError as exc:
        raise LeaseError("lease {}: {}".format(path, exc.strerror)) from None


def _take_decided(current, identity, ttl, at, path, check):
    taken, lease, line = decide_take(current, identity, at, ttl)
    found = None if current in (None, "unreadable") else current
    if taken and not check:
        write(path, lease)
    return taken, taken, found, lease if taken else found, line


def release(path, identity, force=False, check=False):
    """Apply ``decide_release`` on the host. Returns (released, lease found, line)."""
    if not os.path.exists(path):
        return False, None, "no lease"
    try:
        with _Locked(path):
            current = read(path)
            go, line = decide_release(current, identity, force)
            if go and not check:
                os.unlink(path)
                _sync_dir(os.path.dirname(path) or ".")
    except OSError as exc:
        raise LeaseError("lease {}: {}".format(path, exc.strerror)) from None
    return go, None if current == "unreadable" else current, line
