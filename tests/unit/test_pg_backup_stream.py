"""module_utils/pg_backup_stream.py's plumbing: each process's stdin written by a thread of its
own (Feeder), so the archive file never waits for pg_restore, and nothing is lost or kept going
when a reader ends or a sink fails. The whole pass, with fake tools, is in
test_pg_backup_dump_module.py."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils import pg_backup_stream as stream


def test_a_feeder_writes_every_block_in_order_then_closes_the_stdin():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    feeder = stream.Feeder(proc.stdin)
    blocks = [bytes([i]) * (stream.BLOCK // 3 + i) for i in range(40)]  # > QUEUED blocks
    got = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.read()))
    reader.start()
    for block in blocks:
        feeder.put(block)
    feeder.finish()
    reader.join()
    assert proc.wait() == 0
    assert got == [b"".join(blocks)]
    assert feeder.error is None and proc.stdin.closed


def test_a_feeder_whose_reader_ended_drops_the_rest_without_blocking_the_writer():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(10); sys.exit(3)"],
        stdin=subprocess.PIPE,
    )
    feeder = stream.Feeder(proc.stdin)
    for _ in range(200):  # 200 MiB: far more than the pipe and the queue hold
        feeder.put(b"x" * stream.BLOCK)
    feeder.finish()
    assert proc.wait() == 3  # the reader's exit status tells why, not the feeder
    assert feeder.error is None


def test_a_failing_sink_stops_the_copy_at_once():
    source = io.BufferedReader(io.BytesIO(b"a" * (3 * stream.BLOCK)))
    seen = []

    def full(block):
        seen.append(len(block))
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        stream.feed(source, [lambda block: seen.append(len(block)), full])
    assert seen == [stream.BLOCK, stream.BLOCK]  # one block, then nothing more


def test_widen_grows_a_pipe_and_leaves_anything_else_alone():
    read, write = os.pipe()
    with os.fdopen(read, "rb") as reader, os.fdopen(write, "wb"):
        stream.widen(reader)
        if sys.platform.startswith("linux"):
            import fcntl

            assert fcntl.fcntl(reader.fileno(), 1032) >= stream.PIPE_SIZE  # F_GETPIPE_SZ
    assert not stream.widen(io.BytesIO(b""))  # no fileno: unchanged, no error


def test_blocks_of_a_slowly_written_pipe_come_whole_and_in_order():
    # pg_restore writes its COPY text 4 KiB at a time: read as it comes, that is one read (and one
    # wake-up of each side) per write; blocks() lets a widened pipe fill first.
    read, write = os.pipe()
    writes = [bytes([65 + i % 26]) * 4096 for i in range(400)]

    def writer():
        with os.fdopen(write, "wb", buffering=0) as out:
            for i, chunk in enumerate(writes):
                out.write(chunk)
                if i % 4 == 0:
                    time.sleep(0.0002)

    thread = threading.Thread(target=writer)
    with os.fdopen(read, "rb") as reader:
        thread.start()
        got = list(stream.blocks(reader))
    thread.join()
    assert b"".join(got) == b"".join(writes)
    assert all(len(block) <= stream.BLOCK for block in got)
    if sys.platform.startswith("linux"):  # widened: reads of many writes each
        assert len(got) < len(writes) / 8


def test_blocks_of_an_object_without_a_pipe_are_read_as_it_comes():
    source = io.BufferedReader(io.BytesIO(b"x" * (2 * stream.BLOCK + 5)))
    assert [len(b) for b in stream.blocks(source)] == [stream.BLOCK, stream.BLOCK, 5]


def test_lower_priority_raises_the_niceness_of_a_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        before = os.getpriority(os.PRIO_PROCESS, proc.pid)
        stream.lower_priority(proc.pid)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == max(before, stream.VERIFY_NICE)
    finally:
        proc.kill()
        proc.wait()
