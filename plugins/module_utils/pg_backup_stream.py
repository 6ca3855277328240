"""The one pass of pg_backup_dump (database host): pg_dump's custom-format archive is read once, as
it is written. Each block of pg_dump's stdout goes to

- the temporary archive file (or, encrypting, into age, whose output goes to that file),
- sha256 (of what lands in the file: the archive, or age's output),
- ``pg_restore --data-only --file -`` reading stdin, whose text output is counted table by table
  (module_utils/pg_copy_count.py); without row counts, ``pg_restore --file /dev/null``.

The sinks do not wait for each other: every process's stdin is written by a thread of its own
(Feeder, a bounded queue of blocks), every process's stdout is read by one (Drain), and the pipes
are widened to 1 MiB, so pg_dump is never held up by pg_restore decompressing or by the counter
(measured, issue 20: the serial loop let pg_dump's 64 KiB pipe fill while a block went to
pg_restore).

pg_restore reading the whole archive is the verification; its COPY data gives the row counts, so
the database is read once, by pg_dump. Every exit status is checked (pg_dump, age, pg_restore)
and anything that cannot be counted fails the backup; the caller removes the temporary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import subprocess
import threading

from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_age import (
    age_message,
    outcome,
    pipeline,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_files import BackupError
from ansible_collections.opsplay.ops.plugins.module_utils.pg_backup_tools import (
    describe_tool_error,
    unreadable,
)
from ansible_collections.opsplay.ops.plugins.module_utils.pg_copy_count import (
    CopyCounter,
    CountError,
)

BLOCK = 1 << 20
PIPE_SIZE = 1 << 20  # the default limit of /proc/sys/fs/pipe-max-size
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in the fcntl module from Python 3.10
QUEUED = 16  # blocks waiting for one process's stdin at most (16 MiB)


def widen(pipe):
    """Make a pipe hold PIPE_SIZE bytes (Linux; elsewhere, or refused, it keeps its size)."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError, ValueError):
        pass


class Feeder(threading.Thread):
    """Write the blocks given to put() into a process's stdin in a thread of its own, then close
    it (finish). A reader that ended (BrokenPipeError) gets nothing more, its exit status tells
    why; any other error is kept (error) and the rest is dropped. put() waits only when QUEUED
    blocks are already waiting."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.blocks = queue.Queue(QUEUED)
        self.error = None
        widen(pipe)
        self.start()

    def put(self, block):
        self.blocks.put(block)

    def run(self):
        broken = False
        for block in iter(self.blocks.get, None):
            if broken:
                continue
            try:
                self.pipe.write(block)
            except BrokenPipeError:
                broken = True
            except OSError as exc:
                self.error, broken = exc, True
        with contextlib.suppress(OSError):
            self.pipe.close()

    def finish(self):
        """Close the stdin once every block is written (or dropped)."""
        self.blocks.put(None)
        self.join()


class Drain(threading.Thread):
    """Read a pipe to its end into sink(block) in a thread of its own. The first exception of
    sink is kept (error) and, when given, on_error() is called (to stop the producers); the pipe
    is still read to its end so that its writer never blocks."""

    def __init__(self, pipe, sink, on_error=None):
        super().__init__(daemon=True)
        self.pipe, self.sink, self.on_error = pipe, sink, on_error
        self.error = None
        widen(pipe)

    def run(self):
        for block in iter(lambda: self.pipe.read(BLOCK), b""):
            if self.error is not None:
                continue
            try:
                self.sink(block)
            except Exception as exc:
                self.error = exc
                if self.on_error:
                    self.on_error()
        self.pipe.close()


class Written:
    """The archive file and the sha256 of what is written to it."""

    def __init__(self, handle):
        self.handle = handle
        self.sha = hashlib.sha256()

    def __call__(self, block):
        self.handle.write(block)
        self.sha.update(block)


def feed(source, sinks):
    """Copy source (pg_dump's stdout) block by block into every sink (callables: a Feeder's put
    or the archive file's Written); an exception of a sink stops the copy."""
    widen(source)
    for block in iter(lambda: source.read(BLOCK), b""):
        for sink in sinks:
            sink(block)


def reader_argv(pg_restore, count):
    if count:
        return [pg_restore, "--data-only", "--file", "-"]
    return [pg_restore, "--file", os.devnull]


def one_pass(producer, out_path, tools, where, count, age_argv=None):
    """Run producer (pg_dump writing a custom archive to stdout) into out_path (through age_argv,
    an age --encrypt argv writing to stdout, when given), verifying and counting on the way.
    Returns (sha256 hex of out_path, {table: rows} or None, large objects or None)."""
    env = tools.env()
    counter = CopyCounter() if count else None
    with open(out_path, "wb") as handle, pipeline(3) as (procs, errors):
        written = Written(handle)
        dump = subprocess.Popen(producer, env=env, stdout=subprocess.PIPE, stderr=errors[0])
        procs.append(dump)
        reader = subprocess.Popen(
            reader_argv(tools.tool("pg_restore"), count),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if count else subprocess.DEVNULL,
            stderr=errors[1],
        )
        procs.append(reader)
        drains = [Drain(reader.stdout, counter.feed)] if count else []
        feeders = [Feeder(reader.stdin)]
        if age_argv:
            age = subprocess.Popen(
                age_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors[2]
            )
            procs.append(age)
            drains.append(Drain(age.stdout, written, on_error=lambda: stop(procs)))
            feeders.append(Feeder(age.stdin))
        for drain in drains:
            drain.start()
        sinks = [feeder.put for feeder in feeders] + ([] if age_argv else [written])
        try:
            feed(dump.stdout, sinks)
        except BaseException:
            stop(procs)  # the archive cannot be written: the feeders' writes end at once
            raise
        finally:
            for feeder in feeders:
                feeder.finish()
        codes, texts = outcome(procs, errors)
        for drain in drains:
            drain.join()
            if isinstance(drain.error, OSError):
                raise drain.error
        for feeder in feeders:
            if feeder.error is not None:
                raise BackupError("the new archive failed verification: %s" % feeder.error)
        handle.flush()
    judge(producer[0], codes, texts, where)
    if counter is None:
        return written.sha.hexdigest(), None, None
    try:
        counts = counter.finish() if drains[0].error is None else None
    except CountError as exc:
        drains[0].error = exc
    if drains[0].error is not None:
        raise BackupError("the new archive failed verification: row counts: %s" % drains[0].error)
    return written.sha.hexdigest(), counts, counter.large_objects


def stop(procs):
    """Kill the pipeline (the archive cannot be written): pg_dump first."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def judge(tool, codes, texts, where):
    """Raise the first failure of pg_dump, pg_restore (the verification) and age, if any."""
    if codes[0] < 0:
        raise BackupError("%s was killed (signal %d)" % (os.path.basename(tool), -codes[0]))
    if codes[0] != 0:
        raise BackupError(describe_tool_error(os.path.basename(tool), texts[0] or "failed", where))
    if len(codes) > 2 and codes[2] != 0:
        raise BackupError("age: %s in %s" % (age_message(texts[2]), where))
    if codes[1] != 0:
        raise BackupError("the new archive failed verification: %s" % unreadable(texts[1]))


def count_directory(tools, path, count):
    """Read a directory-format archive whole with pg_restore (the verification) and, when count,
    count its rows from the COPY data: ({table: rows} or None, large objects or None)."""
    counter = CopyCounter() if count else None
    with pipeline(1) as (procs, errors):
        reader = subprocess.Popen(
            [*reader_argv(tools.tool("pg_restore"), count), path],
            env=tools.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if count else subprocess.DEVNULL,
            stderr=errors[0],
        )
        procs.append(reader)
        drain = Drain(reader.stdout, counter.feed) if count else None
        if drain:
            drain.run()  # in this thread: nothing else to do meanwhile
        codes, texts = outcome(procs, errors)
    if codes[0] != 0:
        raise BackupError("the new archive failed verification: %s" % unreadable(texts[0]))
    if counter is None:
        return None, None
    try:
        if drain.error is not None:
            raise drain.error
        return counter.finish(), counter.large_objects
    except CountError as exc:
        raise BackupError("the new archive failed verification: row counts: %s" % exc) from exc
