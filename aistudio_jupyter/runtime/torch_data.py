"""A dataset version as a ``torch.utils.data.IterableDataset`` streaming record batches.

The version's file is downloaded once (``Dataset.to_torch`` keeps it in the client's cache,
named by its sha256, so it is never stale) and read a record batch at a time: Parquet through
``ParquetFile.iter_batches``, CSV/TSV through pyarrow's streaming CSV reader, Arrow IPC batch by
batch, JSONL through the streaming JSON reader; memory stays at a few batches whatever the file.

With ``DataLoader(ds, batch_size=None, num_workers=k)`` worker ``i`` takes batches ``i, i+k, …``
so every row is seen exactly once per epoch. ``shuffle`` permutes rows within a window of
batches of the worker's own share (a streaming shuffle: not a global permutation).
torch is imported when the dataset is iterated or built, never by ``import aistudio_jupyter``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow

#: batches a shuffling worker mixes at once
SHUFFLE_WINDOW = 8


def record_batches(path: Path, fmt: str, schema: dict, columns: list[str] | None, block_rows: int) -> Iterator[pyarrow.RecordBatch]:
    """The file's record batches (of any size), reading only ``columns`` where the format allows."""
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(str(path)).iter_batches(batch_size=block_rows, columns=columns)
        return
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(delimiter=schema.get("delimiter") or ("\t" if fmt == "tsv" else ","), newlines_in_values=True)
        convert = pacsv.ConvertOptions(include_columns=columns) if columns else None
        with pa.OSFile(str(path), "rb") as f:
            yield from pacsv.open_csv(f, parse_options=parse, convert_options=convert, read_options=pacsv.ReadOptions(block_size=8 << 20))
        return
    if fmt == "arrow":
        with pa.OSFile(str(path), "rb") as f:
            if schema.get("ipc") == "stream":
                batches: Any = pa.ipc.open_stream(f)
            else:
                reader = pa.ipc.open_file(f)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            for batch in batches:
                yield batch.select(columns) if columns else batch
        return
    if fmt == "jsonl":
        import pyarrow.json as pajson

        with pa.OSFile(str(path), "rb") as f:
            # streaming JSON reading came with pyarrow 19; older ones parse the file whole
            batches = pajson.open_json(f) if hasattr(pajson, "open_json") else pajson.read_json(f).to_batches(max_chunksize=block_rows)
            for batch in batches:
                yield batch.select(columns) if columns else batch
        return
    if fmt == "json":
        from .datasets import read_table  # one JSON document: parsed whole, then batched

        table = read_table(path, fmt, schema)
        yield from (table.select(columns) if columns else table).to_batches(max_chunksize=block_rows)
        return
    raise TypeError(f"Files in the {fmt!r} format are not tables.")


def rebatch(batches: Iterator[pyarrow.RecordBatch], size: int) -> Iterator[pyarrow.RecordBatch]:
    """Exactly ``size`` rows per batch (the last one may be shorter)."""
    import pyarrow as pa

    pending: list = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield table.slice(0, size).to_batches()[0]
            rest = table.slice(size)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _tensor(column: Any, name: str):
    import numpy as np
    import pyarrow as pa
    import torch

    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_duration(kind):
        column = column.cast(pa.int64())
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)):
        raise TypeError(f"Column {name!r} is {column.type}, which is not a tensor; pick numeric columns with columns=[...].")
    if pa.types.is_decimal(kind):
        column = column.cast(pa.float64())
    # nulls become NaN (integers and booleans are widened to float for that)
    array = column.to_numpy(zero_copy_only=False)
    if array.dtype == object:
        array = np.array([np.nan if v is None else v for v in array], dtype=np.float64)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # Arrow's buffers are read-only; torch wants to own writable memory
        array = array.copy()
    return torch.from_numpy(array)


class BatchStream:
    """An ``IterableDataset`` of batches of a local table file (see the module's docstring); build it with ``batch_stream``.

    Yields ``{column: tensor}``, or ``(features, target)`` with ``target`` set: features a
    ``float32`` tensor of shape ``[rows, n_features]`` (the columns other than the target).
    """

    def __init__(self, path: Path, fmt: str, schema: dict, *, batch_size: int = 1024, columns: list[str] | None = None, target: str | None = None, shuffle: bool = False, seed: int | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        names = [c["name"] for c in schema.get("columns", [])] if schema.get("columns") else None
        columns = list(columns) if columns is not None else None
        if names is not None:
            for name in [*(columns or []), *([target] if target else [])]:
                if name not in names:
                    raise KeyError(f"No column {name!r}; the columns are {names}.")
        if target and columns is not None and target not in columns:
            columns = [*columns, target]
        self.path, self.format, self.schema = Path(path), fmt, schema
        self.batch_size, self.columns, self.target, self.shuffle, self.seed = batch_size, columns, target, shuffle, seed
        self.epoch = 0

    def __reduce__(self):
        # DataLoader workers started with spawn unpickle the base class and rebuild
        return (_rebuild, (self.path, self.format, self.schema, {"batch_size": self.batch_size, "columns": self.columns, "target": self.target, "shuffle": self.shuffle, "seed": self.seed}))

    def _convert(self, batch: pyarrow.RecordBatch):
        import torch

        tensors = {name: _tensor(batch.column(i), name) for i, name in enumerate(batch.schema.names)}
        if not self.target:
            return tensors
        target = tensors.pop(self.target)
        if not tensors:
            raise ValueError("No feature columns left besides the target.")
        features = torch.stack([t.to(torch.float32) for t in tensors.values()], dim=1)
        return features, target

    def _own_batches(self) -> Iterator[pyarrow.RecordBatch]:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        index, workers = (info.id, info.num_workers) if info else (0, 1)
        stream = rebatch(record_batches(self.path, self.format, self.schema, self.columns, self.batch_size), self.batch_size)
        for i, batch in enumerate(stream):
            if i % workers == index:
                yield batch

    def __iter__(self) -> Iterator[Any]:
        batches = self._own_batches()
        if not self.shuffle:
            for batch in batches:
                yield self._convert(batch)
            return
        import pyarrow as pa
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        base = self.seed if self.seed is not None else random.randrange(2**31)
        rng = random.Random((base, self.epoch, info.id if info else 0).__hash__())
        self.epoch += 1
        window: list = []
        for batch in batches:
            window.append(batch)
            if len(window) == SHUFFLE_WINDOW:
                yield from self._mixed(window, rng, pa)
                window = []
        if window:
            yield from self._mixed(window, rng, pa)

    def _mixed(self, window: list, rng: random.Random, pa: Any) -> Iterator[Any]:
        table = pa.Table.from_batches(window)
        order = list(range(table.num_rows))
        rng.shuffle(order)
        mixed = table.take(order)
        for start in range(0, mixed.num_rows, self.batch_size):
            yield self._convert(mixed.slice(start, self.batch_size).combine_chunks().to_batches()[0])


_torch_class: type | None = None


def batch_stream(path: Path, fmt: str, schema: dict, **options: Any) -> BatchStream:
    """A ``BatchStream`` that is also a ``torch.utils.data.IterableDataset`` (torch imported here, not before)."""
    global _torch_class
    if _torch_class is None:
        import torch.utils.data

        _torch_class = type("BatchStream", (BatchStream, torch.utils.data.IterableDataset), {"__module__": __name__})
    return _torch_class(path, fmt, schema, **options)


def _rebuild(path: Path, fmt: str, schema: dict, options: dict) -> BatchStream:
    return batch_stream(path, fmt, schema, **options)
