"""Writers that stream rows to disk in constant memory, with equal bytes for equal rows: a .npy
array whose length is known only at the end (readers memory-map it) and a Parquet table written
one row group at a time. Both create their file anew, never editing an existing one in place
(DVC may hard-link outputs to its cache: README, "Scale").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Rows per Parquet row group: what a table writer holds, and what a reader reads at once.
ROW_GROUP_ROWS = 65536
# Fixed settings and no pandas metadata, so equal rows give equal bytes.
PARQUET_OPTIONS = dict(version="2.6", use_dictionary=False, write_statistics=False,
                       data_page_version="1.0")


def shard_name(index: int, suffix: str) -> str:
    """File name of shard `index` of a store whose shards end in `suffix`: shard-00003.jpegs."""
    return f"shard-{index:05d}{suffix}"


class ArrayWriter:
    """Appends rows to a .npy file of shape (N, *row_shape); N is written into the header when
    the writer closes (numpy leaves room for it: `np.lib.format`'s growth-axis padding)."""

    def __init__(self, path: str | Path, dtype, row_shape: tuple[int, ...] = ()):
        self.path, self.dtype, self.row_shape = Path(path), np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self.path.unlink(missing_ok=True)
        self.file = self.path.open("wb")
        self._write_header()
        self.data_start = self.file.tell()

    def _write_header(self) -> None:
        self.file.seek(0)
        np.lib.format.write_array_header_1_0(self.file, {
            "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
            "shape": (self.rows, *self.row_shape)})

    def append(self, rows: np.ndarray) -> None:
        """Append (n, *row_shape) rows, cast to the writer's dtype."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        assert rows.shape[1:] == self.row_shape, (self.path, rows.shape, self.row_shape)
        self.file.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        self._write_header()
        assert self.file.tell() == self.data_start, self.path  # the header kept its length
        self.file.close()


def arrow_column(values, type: pa.DataType) -> pa.Array:
    """`values` (a sequence or numpy array, no nulls) as an Arrow array of `type`, a string or
    a numeric type, built from numpy buffers: `pa.array` imports pandas on its first call, to
    look for pandas objects, and that import costs 0.25-0.4 s of a core in the middle of an
    extract run, in a process that has no other use for pandas. Integers must fit `type`."""
    if pa.types.is_string(type):
        encoded = [value.encode() for value in values]
        offsets = np.zeros(len(encoded) + 1, np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return pa.Array.from_buffers(type, len(encoded), [
            None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    if not (pa.types.is_integer(type) or pa.types.is_floating(type)):
        raise TypeError(f"a table column of type {type}: only strings and numbers are written")
    given = np.asarray(values)
    with np.errstate(invalid="ignore"):  # NaN cast to an integer: the check below says so
        data = np.ascontiguousarray(given, dtype=type.to_pandas_dtype())
    if pa.types.is_integer(type) and not np.array_equal(data, given):
        raise ValueError(f"values out of range of {type} or not integers")
    return pa.Array.from_buffers(type, len(data), [None, pa.py_buffer(data)])


class TableWriter:
    """Appends rows to a Parquet file in row groups of exactly `row_group_rows` rows (the last
    one shorter), holding at most one row group and one appended table in memory."""

    def __init__(self, path: str | Path, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS,
                 compression: str = "zstd"):
        path = Path(path)
        path.unlink(missing_ok=True)
        self.schema, self.row_group_rows = schema, row_group_rows
        self.writer = pq.ParquetWriter(path, schema, compression=compression, **PARQUET_OPTIONS)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def append(self, columns: dict) -> None:
        """Append rows given as {column: values}, every column of the schema."""
        table = pa.table([arrow_column(columns[f.name], f.type) for f in self.schema],
                         schema=self.schema)
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.row_group_rows:
            self._write(self.row_group_rows)

    def _write(self, rows: int) -> None:
        table = pa.concat_tables(self.pending)  # the bytes do not depend on how rows came
        self.writer.write_table(table.slice(0, rows), row_group_size=rows)
        rest = table.slice(rows)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._write(self.pending_rows)
        self.writer.close()
