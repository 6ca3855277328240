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

CPU is what the pass is short of (two cores: pg_dump compressing and its server backend already
use more than one), so the readers spend little (blocks: large reads, not one per 4 KiB write) and
the verification runs at a lower priority (VERIFY_NICE) than the dump it checks.

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
import time

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
PATIENCE = 0.002  # seconds a widened pipe is left to fill after a read that found little in it
VERIFY_NICE = 10  # pg_restore and the counter: the CPU pg_dump and its backend leave


def widen(pipe):
    """Make a pipe hold PIPE_SIZE bytes (Linux; elsewhere, or refused, it keeps its size).
    True when it does."""
    try:
        import fcntl

        return fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE) >= PIPE_SIZE
    except (ImportError, OSError, ValueError):
        return False


def blocks(pipe):
    """The bytes of pipe to its end, in blocks of at most BLOCK.

    pg_dump and pg_restore write 4 KiB at a time; a reader that takes each as it comes costs both
    sides a wake-up per 4 KiB (issue 20: pg_restore's 2.5 GB of COPY text read that way took
    ~6 s more CPU than in blocks of ~450 KiB). So when the pipe is widened and a read found less
    than a quarter of BLOCK, the next read waits PATIENCE: the writer does not wait for it (1 MiB
    is ~3.5 ms of pg_restore's output at its fastest, 20 ms of pg_dump's) and reads come large. A
    pipe that keeps its size is read as it comes."""
    try:
        fd = pipe.fileno()
    except (AttributeError, OSError, ValueError):
        yield from iter(lambda: pipe.read(BLOCK), b"")
        return
    patient = widen(pipe)
    while True:
        block = os.read(fd, BLOCK)
        if not block:
            return
        yield block
        if patient and len(block) < BLOCK // 4:
            time.sleep(PATIENCE)


def lower_priority(pid=0):
    """Give process (or, on Linux, thread) pid at least VERIFY_NICE (0: the calling thread); a
    niceness already higher stays, and where the system refuses, it keeps its own."""
    try:
        who = pid or threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, who, max(os.getpriority(os.PRIO_PROCESS, who), VERIFY_NICE))
    except (AttributeError, OSError):
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
    """Read a pipe to its end into sink(block) in a thread of its own (at VERIFY_NICE when
    lowered: the counter). The first exception of sink is kept (error) and, when given,
    on_error() is called (to stop the producers); the pipe is still read to its end so that its
    writer never blocks."""

    def __init__(self, pipe, sink, on_error=None, lowered=False):
        super().__init__(daemon=True)
        self.pipe, self.sink, self.on_error = pipe, sink, on_error
        self.lowered = lowered
        self.error = None

    def run(self):
        if self.lowered:
            lower_priority()
        for block in blocks(self.pipe):
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
    for block in blocks(source):
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
        lower_priority(reader.pid)
        drains = [Drain(reader.stdout, counter.feed, lowered=True)] if count else []
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


def restore_reading_once(argv, path, env):
    """Run argv (pg_restore without a file: it reads stdin) on the archive file at path, fed by
    this process, which hashes what it reads: (exit code, stderr and stdout, sha256 hex of the
    whole file). A pg_restore that ends early gets nothing more, but the file is still read to
    its end, so the digest is always of all of it (the restore test's checksum, without reading
    the archive a second time: issue 20)."""
    digest = hashlib.sha256()
    with open(path, "rb") as source, pipeline(2) as (procs, outputs):
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=outputs[1], stderr=outputs[0]
        )
        procs.append(proc)
        feeder = Feeder(proc.stdin)
        try:
            for block in iter(lambda: source.read(BLOCK), b""):
                digest.update(block)
                feeder.put(block)
        finally:
            feeder.finish()
        codes, texts = outcome(procs, outputs)
    if feeder.error is not None:
        raise feeder.error
    said = "\n".join(text.strip() for text in texts if text.strip())
    return codes[0], said, digest.hexdigest()
