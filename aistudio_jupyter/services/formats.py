"""What an uploaded file is, decided from its bytes alone (never from its name or the client's
content type): CSV, TSV, Parquet, JSON, JSONL, Arrow IPC (Feather v2), or a zip of images.

Executables and anything unknown are refused (415); a known format that does not parse, and
zip archives that could hurt whoever unpacks them (``..``, absolute paths, backslashes,
symlinks, bombs), are refused too. Schemas come from the stored bytes without loading the rows:
the Parquet footer, the Arrow schema message, the first MiB of text. Zip checks: ``zips.py``.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
from typing import Any

from ..errors import InvalidInput, UnsupportedMediaType
from ..storage.base import Storage
from . import zips

MIB = 1024 * 1024
#: how much of a text file is read to tell its format and infer its columns
HEAD_BYTES = 1 * MIB

MEDIA_TYPES = {
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.file",
    "zip": "application/zip",
}

_EXECUTABLES = [
    (b"\x7fELF", "an ELF executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class"),
    (b"#!", "a script (it starts with #!)"),
]
@dataclasses.dataclass(frozen=True)
class Detected:
    format: str
    schema: dict[str, Any]
    row_count: int | None = None

    @property
    def media_type(self) -> str:
        if self.format == "arrow" and self.schema.get("ipc") == "stream":
            return "application/vnd.apache.arrow.stream"
        return MEDIA_TYPES[self.format]


class BlockFile(io.RawIOBase):
    """A seekable read-only file over a stored object, fetched in blocks (ranged GETs on S3)."""

    def __init__(self, storage: Storage, key: str, size: int, block: int = 4 * MIB):
        self._storage, self._key, self._size, self._block = storage, key, size, block
        self._pos = 0
        self._cache_start, self._cache = 0, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not view.nbytes:
            return 0
        start = self._pos - self._cache_start
        if not (0 <= start < len(self._cache)):
            self._cache_start = self._pos
            self._cache = self._storage.read_range(self._key, self._pos, max(self._block, view.nbytes))
            start = 0
        n = min(view.nbytes, len(self._cache) - start)
        view[:n] = self._cache[start : start + n]
        self._pos += n
        return n


def open_object(storage: Storage, key: str, size: int):
    """A seekable binary file over ``key``: the file itself on local disk, else ranged reads."""
    path = storage.local_path(key)
    if path is not None:
        return open(path, "rb")  # noqa: SIM115 -- the caller closes it
    return io.BufferedReader(BlockFile(storage, key, size), buffer_size=64 * 1024)


def sniff(storage: Storage, key: str, size: int, zip_limits: zips.ZipLimits | None = None) -> Detected:
    """Tell the format of the stored object ``key`` and its schema; refuse what we do not serve."""
    if size == 0:
        raise InvalidInput("The file is empty.")
    with open_object(storage, key, size) as f:
        head = f.read(HEAD_BYTES)
        complete = len(head) == size
        if head.startswith(b"PAR1"):
            return _parquet(f, size)
        if head.startswith(b"ARROW1"):
            return _arrow_file(f)
        if head.startswith(b"\xff\xff\xff\xff"):
            return _arrow_stream(head)
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return zips.check(f, size, zip_limits or zips.ZipLimits())
        for magic, what in _EXECUTABLES:
            if head.startswith(magic):
                raise UnsupportedMediaType(f"Executables are not datasets: the file is {what}.", {"detected": what})
        if head.startswith(b"MZ") and b"\x00" in head[:512]:
            raise UnsupportedMediaType("Executables are not datasets: the file is a Windows (PE/MZ) executable.", {"detected": "a Windows executable"})
        text = decode_text(head, complete)
        if text is None:
            raise UnsupportedMediaType(
                "Unsupported format: upload CSV, TSV, Parquet, JSON, JSONL, Arrow/Feather or a zip of images.", {"detected": describe(head)}
            )
        return _text_format(text, complete)


def describe(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip (decompress it first)"
    if head.startswith(b"FEA1"):
        return "Feather v1 (save it as Feather v2 / Arrow IPC)"
    if head.startswith(b"%PDF"):
        return "PDF"
    kind = zips.image_kind(head)
    if kind:
        return f"a single {kind} image (zip images together)"
    return "binary data"


def _columns(schema) -> list[dict[str, str]]:
    return [{"name": field.name, "type": str(field.type)} for field in schema]


# -- binary tabular formats ----------------------------------------------------------------


def _parquet(f, size: int) -> Detected:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(f).metadata  # the footer only
        schema = meta.schema.to_arrow_schema()
    except Exception as exc:  # pyarrow raises many kinds for corrupt footers
        raise InvalidInput(f"The file starts like Parquet but is not valid Parquet: {str(exc)[:200]}", {"format": "parquet"}) from None
    return Detected("parquet", {"columns": _columns(schema)}, meta.num_rows)


def _arrow_file(f) -> Detected:
    import pyarrow as pa

    try:
        reader = pa.ipc.open_file(f)
        schema = reader.schema
        count = getattr(reader, "count_rows", None)  # reads batch headers only; pyarrow 15–24
        # newer pyarrow dropped count_rows: one batch in memory at a time, never the file
        rows = count() if count else sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    except Exception as exc:
        raise InvalidInput(f"The file starts like Arrow IPC but is not valid: {str(exc)[:200]}", {"format": "arrow"}) from None
    return Detected("arrow", {"ipc": "file", "columns": _columns(schema)}, rows)


def _arrow_stream(head: bytes) -> Detected:
    import pyarrow as pa

    try:
        schema = pa.ipc.open_stream(io.BytesIO(head)).schema  # the first message is the schema
    except Exception:
        raise UnsupportedMediaType("Unsupported format: binary data.", {"detected": "binary data"}) from None
    return Detected("arrow", {"ipc": "stream", "columns": _columns(schema)})


# -- text formats --------------------------------------------------------------------------

_CONTROL = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D}


def decode_text(head: bytes, complete: bool) -> str | None:
    """``head`` decoded if it is text (UTF-8, or mostly printable single-byte text), else None."""
    if b"\x00" in head:
        return None
    if sum(1 for b in head[:65536] if b in _CONTROL) > len(head[:65536]) / 100:
        return None
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # not final unless we hold the whole file: the head may end inside a character
        return decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        # other encodings are the validator's finding, not a reason to refuse the file
        return head.decode("latin-1")


def _whole_lines(text: str, complete: bool) -> str:
    """Drop the last, possibly cut, line of a head."""
    if complete:
        return text
    cut = text.rfind("\n")
    return text[: cut + 1] if cut >= 0 else ""


def _text_format(text: str, complete: bool) -> Detected:
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        found = _json_format(stripped, complete)
        if found:
            return found
    return _delimited(text, complete)


def _json_format(text: str, complete: bool) -> Detected | None:
    decoder = json.JSONDecoder()
    first_line = text.split("\n", 1)[0].strip()
    try:
        first = json.loads(first_line)
    except ValueError:
        first = None
    if isinstance(first, dict) and (complete or "\n" in text):
        lines = [line for line in _whole_lines(text, complete).splitlines() if line.strip()]
        try:
            records = [json.loads(line) for line in lines]
        except ValueError:
            records = None
        if records is not None and all(isinstance(r, dict) for r in records):
            return Detected("jsonl", {"columns": _record_columns(records)}, len(records) if complete else None)
    if text.startswith("["):
        return _json_array(text, complete, decoder)
    if complete:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"The file looks like JSON but does not parse: {exc}", {"format": "json"}) from None
        return Detected("json", {"kind": type(value).__name__ if not isinstance(value, dict) else "object", "columns": []})
    return Detected("json", {"kind": "object", "columns": []})


def _json_array(text: str, complete: bool, decoder: json.JSONDecoder) -> Detected:
    """Records from the head of a JSON array, one element at a time (no whole-file parse)."""
    records: list[Any] = []
    pos, end = 1, len(text)
    while pos < end:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end or text[pos] == "]":
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            if complete:
                raise InvalidInput(f"The file looks like JSON but does not parse: {exc}", {"format": "json"}) from None
            break  # the head ends inside an element
        records.append(value)
    if complete:
        try:
            json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"The file looks like JSON but does not parse: {exc}", {"format": "json"}) from None
    if not records and not complete:
        raise InvalidInput("The file looks like a JSON array but its first element is larger than 1 MiB.", {"format": "json"})
    tabular = records and all(isinstance(r, dict) for r in records)
    schema = {"kind": "records", "columns": _record_columns(records)} if tabular else {"kind": "array", "columns": []}
    return Detected("json", schema, len(records) if complete else None)


def _record_columns(records: list[dict]) -> list[dict[str, str]]:
    import pyarrow as pa

    try:
        return _columns(pa.Table.from_pylist(records).schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        # mixed types in a column: names are still useful, the validator reports the mix
        names = list(dict.fromkeys(k for r in records for k in r))
        return [{"name": str(n), "type": "mixed"} for n in names]


_DELIMITERS = {",": "csv", "\t": "tsv", ";": "csv", "|": "csv"}


def _delimited(text: str, complete: bool) -> Detected:
    body = _whole_lines(text, complete)
    if not body.strip():
        raise UnsupportedMediaType("Unsupported format: the file is text but has no complete line in its first MiB.", {"detected": "text"})
    sample = body[:262144]
    best = None
    for delimiter in _DELIMITERS:
        counts = _field_counts(sample, delimiter, drop_last=len(sample) < len(body))
        if counts and counts[0] >= 2:
            agree = sum(1 for c in counts if c == counts[0]) / len(counts)
            if agree >= 0.9 and (best is None or counts[0] > best[1]):
                best = (delimiter, counts[0])
    delimiter = best[0] if best else ","
    return _csv_schema(body, delimiter, complete)


def _field_counts(sample: str, delimiter: str, drop_last: bool) -> list[int]:
    try:
        rows = list(csv.reader(io.StringIO(sample), delimiter=delimiter))[:200]
    except csv.Error:
        return []
    if drop_last and len(rows) > 1:
        rows = rows[:-1]
    return [len(r) for r in rows if r]


def _csv_schema(body: str, delimiter: str, complete: bool) -> Detected:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    fmt = _DELIMITERS[delimiter]
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=lambda row: "skip")
    try:
        table = pacsv.read_csv(io.BytesIO(body.encode("utf-8")), parse_options=parse)
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInput(f"The file looks like {fmt.upper()} but does not parse: {str(exc)[:200]}", {"format": fmt}) from None
    schema: dict[str, Any] = {"columns": _columns(table.schema)}
    if delimiter not in (",", "\t"):
        schema["delimiter"] = delimiter
    return Detected(fmt, schema, table.num_rows if complete else None)
