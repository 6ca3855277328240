"""Exact row counts of a PostgreSQL archive, read from ``pg_restore --data-only`` text output as it
streams by (module_utils of pg_backup_dump; no PostgreSQL needed here).

pg_restore writes each table's data as a text COPY block::

    COPY public.orders (id, note) FROM stdin;
    1<TAB>first\\nline
    \\.

In text COPY one row is one line: a newline, carriage return, tab or backslash inside a value is
escaped (``\\n``, ``\\r``, ``\\t``, ``\\\\``), so a row never spans lines and no row is the line
``\\.``, which ends the block. The count of a table is the number of lines of its block.

Partitioned tables: pg_dump writes the rows of each leaf partition under the leaf's own name (not
the parent's, unless pg_dump runs with --load-via-partition-root, which pg_backup never passes), so
the counts are per leaf, as roles/pg_backup/files/row_counts.sql counts them (relkind 'r').

Large objects are not COPY data: pg_restore writes each one as
``SELECT pg_catalog.lo_open('OID', 131072);``, ``lowrite`` calls and ``lo_close(0)``; they are
counted as large objects (lo_open lines, each closed by one lo_close line) apart from the tables.

Anything that cannot be counted exactly is refused (CountError), never counted as zero: a stream
that ends inside a COPY block or in the middle of a line, a COPY header whose table name cannot
be read, the same table twice, INSERT statements (a dump made with --inserts), a large object
left open.
"""

from __future__ import annotations

HEADER = b"COPY "
HEADER_END = b" FROM stdin;"
TERMINATOR = b"\\.\n"
LO_OPEN = b"SELECT pg_catalog.lo_open("
LO_CLOSE = b"SELECT pg_catalog.lo_close("


class CountError(Exception):
    """The stream cannot be counted exactly (one line, for the module's message)."""


def table_name(line):
    """The qualified table name of a COPY header line (bytes), as pg_dump quoted it, or raise."""
    if not (line.startswith(HEADER) and line.endswith(HEADER_END)):
        raise CountError("unreadable COPY header: %r" % line[:200])
    text = line[len(HEADER) : -len(HEADER_END)].decode("utf-8", "surrogateescape")
    pos, parts = 0, 0
    while True:
        if text.startswith('"', pos):
            end = pos + 1
            while True:
                end = text.find('"', end)
                if end < 0:
                    raise CountError("unreadable table name in COPY header: %r" % text[:200])
                if text.startswith('""', end):
                    end += 2
                    continue
                pos = end + 1
                break
        else:
            stop = [i for i in (text.find(".", pos), text.find(" ", pos)) if i >= 0]
            pos = min(stop) if stop else len(text)
        parts += 1
        if text.startswith(".", pos) and parts < 3:
            pos += 1
            continue
        break
    name, rest = text[:pos], text[pos:]
    if not name or not (rest == "" or rest.startswith(" (") or rest == " "):
        raise CountError("unreadable table name in COPY header: %r" % text[:200])
    return name


class CopyCounter:
    """Feed it pg_restore's text output in chunks (feed), then finish(): {table: rows}."""

    def __init__(self):
        self.counts = {}
        self.large_objects = 0
        self._open_objects = 0
        self._table = None  # the table whose COPY block is being read
        self._rest = b""  # an incomplete last line

    def feed(self, chunk):
        data = self._rest + chunk if self._rest else chunk
        pos = 0
        while pos < len(data):
            if self._table is not None:
                pos = self._copy(data, pos)
                if pos < 0:
                    return
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            self._sql(data[pos:newline])
            pos = newline + 1
        self._rest = data[pos:]

    def _copy(self, data, start):
        """Count the rows of the COPY block from start (a line start): the position after its
        terminator, or -1 when the block goes on in the next chunk (the partial line kept)."""
        if data.startswith(TERMINATOR, start):
            self._table = None
            return start + len(TERMINATOR)
        # the terminator starts with a backslash: where the data has none (a memchr), the block
        # goes on past this chunk and the search for the terminator is skipped (issue 20: the
        # counter went from 1.3 to 3.1 GB/s on the benchmark's pg_restore output)
        end = data.find(b"\n" + TERMINATOR, start) if data.find(b"\\", start) >= 0 else -1
        if end >= 0:
            self.counts[self._table] += data.count(b"\n", start, end + 1)
            self._table = None
            return end + 1 + len(TERMINATOR)
        last = data.rfind(b"\n", start)
        if last < 0:
            self._rest = data[start:]
            return -1
        self.counts[self._table] += data.count(b"\n", start, last + 1)
        self._rest = data[last + 1 :]
        return -1

    def _sql(self, line):
        if line.startswith(HEADER):
            table = table_name(line)
            if table in self.counts:
                raise CountError("table %s has two COPY blocks" % table)
            self.counts[table] = 0
            self._table = table
        elif line.startswith(LO_OPEN):
            if self._open_objects:
                raise CountError("a large object opened before the previous one was closed")
            self._open_objects += 1
            self.large_objects += 1
        elif line.startswith(LO_CLOSE):
            if not self._open_objects:
                raise CountError("a large object closed that was not opened")
            self._open_objects -= 1
        elif line.startswith(b"INSERT INTO "):
            raise CountError("the archive holds INSERT statements (pg_dump --inserts): not counted")

    def finish(self):
        """The counts of the whole stream, or CountError when it was cut short."""
        if self._table is not None:
            raise CountError(
                "the data of %s ends without its end-of-data line (truncated)" % self._table
            )
        if self._rest:
            raise CountError("the data ends in the middle of a line (truncated)")
        if self._open_objects:
            raise CountError("a large object is not closed (truncated)")
        return dict(self.counts)
