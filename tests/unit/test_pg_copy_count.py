"""The COPY row counter of pg_backup_dump (plugins/module_utils/pg_copy_count.py): exact row counts
from ``pg_restore --data-only`` text output, fed in chunks of every size; anything it cannot count
is refused, never counted as zero. No host: the text is given here, and one real pg_restore output
from the lab (PostgreSQL 15) is in tests/unit/data/pg_restore_data_only.txt."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.opsplay.ops.plugins.module_utils.pg_copy_count import (
    CopyCounter,
    CountError,
    table_name,
)

REAL = Path(__file__).parent / "data" / "pg_restore_data_only.txt"

# What pg_restore --data-only writes (PostgreSQL 15): comments, SETs, COPY blocks, large objects.
TEXT = (
    b"--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'UTF8';\n"
    b"SELECT pg_catalog.set_config('search_path', '', false);\n\n"
    b"--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n"
    b"COPY public.t (id, note) FROM stdin;\n"
    b"1\ttwo\\nlines\n"  # an embedded newline, escaped
    b"2\ttab\\there\n"  # an embedded tab
    b"3\tback\\\\slash \\\\. x\n"  # backslashes, and \. inside a value
    b"4\t\\\\.\n"  # a value that is exactly \.
    b"5\t\\N\n"
    b"6\t\n"
    b"\\.\n\n"
    b"COPY public.empty_t (id) FROM stdin;\n\\.\n\n"
    b"COPY public.nocols  FROM stdin;\n\n\n\\.\n\n"  # a table without columns: empty lines
    b"COPY public.p1 (k, v) FROM stdin;\n0\tv\n1\tv\n\\.\n\n"  # leaves of a partitioned table
    b"COPY public.p2 (k, v) FROM stdin;\n10\tv\n\\.\n\n"
    b'COPY "Odd Name"."we""ird.x" (id) FROM stdin;\n7\n\\.\n\n'
    b"SELECT pg_catalog.setval('public.s', 3, true);\n\nBEGIN;\n\n"
    b"SELECT pg_catalog.lo_open('16449', 131072);\nSELECT pg_catalog.lowrite(0, '\\x68656c6c6f');\n"
    b"SELECT pg_catalog.lo_close(0);\n\n"
    b"SELECT pg_catalog.lo_open('16450', 131072);\nSELECT pg_catalog.lo_close(0);\n\nCOMMIT;\n"
)
EXPECTED = {
    "public.t": 6,
    "public.empty_t": 0,
    "public.nocols": 2,
    "public.p1": 2,
    "public.p2": 1,
    '"Odd Name"."we""ird.x"': 1,
}


def count(text: bytes, size: int) -> CopyCounter:
    counter = CopyCounter()
    for start in range(0, len(text), size):
        counter.feed(text[start : start + size])
    return counter


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_rows_are_counted_exactly_whatever_the_chunks(size):
    counter = count(TEXT, size)
    assert counter.finish() == EXPECTED
    assert counter.large_objects == 2


def test_real_pg_restore_output_of_the_lab():
    """pg_dump -Fc | pg_restore --data-only -f - on the lab's PostgreSQL 15, of a database with
    the rows above (newline, tab, backslashes, \\., NULL, ''), an empty table, a table without
    columns (2 rows), a partitioned table of 15 rows in two leaves (10 + 5), a table in a quoted
    schema, and two large objects."""
    counter = count(REAL.read_bytes(), 4096)
    assert counter.finish() == {
        '"Odd Name"."we""ird"': 0,
        "public.empty_t": 0,
        "public.nocols": 2,
        "public.p1": 10,
        "public.p2": 5,
        "public.t": 6,
    }
    assert counter.large_objects == 2


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (b"COPY public.t (id, note) FROM stdin;\n1\ta\n", "ends without its end-of-data line"),
        (b"COPY public.t (id, note) FROM stdin;\n1\ta", "ends without its end-of-data line"),
        (b"COPY public.t (id, note) FROM stdin;\n1\ta\n\\", "ends without its end-of-data line"),
        (b"SET client_encoding = 'UTF8'", "in the middle of a line"),
        (b"SELECT pg_catalog.lo_open('1', 131072);\n", "large object is not closed"),
    ],
)
def test_a_truncated_stream_is_refused_not_counted(cut, message):
    counter = count(cut, 3)
    with pytest.raises(CountError, match=message):
        counter.finish()


def test_every_prefix_of_the_stream_is_refused_or_counted_whole():
    """Cut anywhere, the stream is refused unless the cut falls where pg_restore could have
    stopped between statements; it never gives a smaller count for a table."""
    for end in range(len(TEXT)):
        counter = count(TEXT[:end], 11)
        try:
            counts = counter.finish()
        except CountError:
            continue
        assert all(counts[t] == EXPECTED[t] for t in counts), end


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"COPY public.t (id) FROM stdin;\n\\.\nCOPY public.t (id) FROM stdin;\n", "two COPY"),
        (b'COPY "odd (id) FROM stdin;\n', "unreadable table name"),
        (b"COPY public.t (id) FROM '/tmp/x';\n", "unreadable COPY header"),
        (b"INSERT INTO public.t VALUES (1);\n", "INSERT statements"),
        (b"SELECT pg_catalog.lo_close(0);\n", "not opened"),
    ],
)
def test_what_cannot_be_counted_is_refused(text, message):
    with pytest.raises(CountError, match=message):
        count(text, 4).finish()


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"COPY public.t (a, b) FROM stdin;", "public.t"),
        (b"COPY public.nocols  FROM stdin;", "public.nocols"),
        (b'COPY "a b"."c.d" (x) FROM stdin;', '"a b"."c.d"'),
        (b'COPY "x""y".z (x) FROM stdin;', '"x""y".z'),
    ],
)
def test_table_names_are_read_as_pg_dump_quotes_them(header, name):
    assert table_name(header) == name


@pytest.mark.parametrize("size", [1, 3, 4096, 1 << 20])
def test_blocks_without_a_backslash_are_counted_on_the_fast_path(size):
    # No backslash in the data: each chunk is counted without looking for the terminator, until
    # the chunk that holds it (its own backslash), wherever the chunks cut the stream.
    rows = b"".join(b"%d\tplain words %d\n" % (i, i * 7) for i in range(20000))
    text = b"COPY public.big (id, note) FROM stdin;\n" + rows + b"\\.\n\n" + TEXT
    assert count(text, size).finish() == dict(EXPECTED, **{"public.big": 20000})
