"""Zip archives of images, checked without unpacking: names that could escape a directory
(``..``, absolute paths, backslashes, symlinks), bombs (declared sizes against the archive's,
overlapping members), and members that are neither images nor text label files.

Declared sizes are what count: Python's zipfile never inflates a member past its declared
size, so an archive that passes here cannot expand further in whoever reads it that way.
"""

from __future__ import annotations

import dataclasses
import struct
import zipfile

from ..errors import InvalidInput, UnsupportedMediaType
from . import formats

_IMAGES = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
]
#: archive members that macOS and Windows add by themselves; neither images nor refused
_OS_CRUFT = ("__MACOSX/", ".DS_Store", "Thumbs.db")


@dataclasses.dataclass(frozen=True)
class ZipLimits:
    """What a zip of images may declare; zipfile never inflates a member past its declared size."""

    max_entries: int = 100_000
    max_uncompressed_bytes: int = 32 * 1024**3
    #: declared uncompressed bytes per byte of archive; images barely compress, bombs reach 1000s
    max_ratio: float = 100.0


# -- zip of images -------------------------------------------------------------------------


def _central_directory(f, size: int) -> tuple[int, int]:
    """(entries, central directory bytes) from the end record, before zipfile reads it all."""
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise InvalidInput("The zip archive has no end-of-directory record.", {"format": "zip"})
    entries, cd_size = struct.unpack("<10xHL6x", tail[at : at + 22])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # zip64: the real numbers are in its own record
        locator = tail[at - 20 : at] if at >= 20 else b""
        if not locator.startswith(b"PK\x06\x07"):
            raise InvalidInput("The zip64 archive has no zip64 locator.", {"format": "zip"})
        (record_at,) = struct.unpack("<8xQ4x", locator)
        f.seek(record_at)
        record = f.read(56)
        if not record.startswith(b"PK\x06\x06") or len(record) < 56:
            raise InvalidInput("The zip64 end record is missing.", {"format": "zip"})
        entries, cd_size = struct.unpack("<32xQQ8x", record)
    return entries, cd_size


def _unsafe_name(name: str) -> str | None:
    if "\\" in name:
        return "a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in name.split("/"):
        return "'..'"
    if "\x00" in name:
        return "a NUL character"
    return None


def check(f, size: int, limits: ZipLimits) -> formats.Detected:
    entries, cd_size = _central_directory(f, size)
    if entries > limits.max_entries or cd_size > limits.max_entries * 1024:
        raise InvalidInput(f"The zip archive has more than {limits.max_entries} entries.", {"format": "zip", "entries": entries})
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InvalidInput(f"Not a valid zip archive: {str(exc)[:200]}", {"format": "zip"}) from None
    with archive:
        infos = archive.infolist()
        declared = sum(i.file_size for i in infos)
        for info in infos:
            why = _unsafe_name(info.filename)
            if why:
                raise InvalidInput(f"The zip archive has an entry whose name contains {why}.", {"format": "zip", "entry": info.filename[:200]})
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise InvalidInput("The zip archive contains a symbolic link.", {"format": "zip", "entry": info.filename[:200]})
        if declared > limits.max_uncompressed_bytes or declared > limits.max_ratio * size:
            raise InvalidInput(
                "The zip archive would expand too much (a zip bomb?).",
                {"format": "zip", "uncompressed_bytes": declared, "archive_bytes": size, "max_ratio": limits.max_ratio, "max_uncompressed_bytes": limits.max_uncompressed_bytes},
            )
        _refuse_overlaps(infos)
        kinds = _member_kinds(archive, infos)
    images = sum(kinds.values())
    if not images:
        raise UnsupportedMediaType("The zip archive holds no images; zip archives must be collections of images.", {"detected": "zip without images"})
    return formats.Detected("zip", {"kind": "images", "files": len(infos), "images": images, "image_types": kinds, "uncompressed_bytes": declared}, images)


def _refuse_overlaps(infos: list[zipfile.ZipInfo]) -> None:
    """Members whose data overlap are how non-recursive bombs multiply one compressed kernel."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for this, following in zip(ordered, ordered[1:]):
        encoding = "utf-8" if this.flag_bits & 0x800 else "cp437"
        end = this.header_offset + 30 + len(this.orig_filename.encode(encoding, "replace")) + this.compress_size
        if end > following.header_offset:
            raise InvalidInput("The zip archive has overlapping entries (a zip bomb?).", {"format": "zip", "entry": following.filename[:200]})


def _member_kinds(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> dict[str, int]:
    """Image kind → count; label files (text) are allowed beside images, anything else refused."""
    kinds: dict[str, int] = {}
    # in archive order, so reads over ranged storage stay sequential
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.is_dir() or info.filename.startswith(_OS_CRUFT[0]) or info.filename.rsplit("/", 1)[-1] in _OS_CRUFT[1:]:
            continue
        if info.flag_bits & 0x1:
            raise UnsupportedMediaType("The zip archive has encrypted entries.", {"detected": "encrypted zip", "entry": info.filename[:200]})
        try:
            with archive.open(info) as member:
                head = member.read(64)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError, ValueError) as exc:
            raise InvalidInput(f"A zip entry cannot be read: {str(exc)[:200]}", {"format": "zip", "entry": info.filename[:200]}) from None
        kind = image_kind(head)
        if kind:
            kinds[kind] = kinds.get(kind, 0) + 1
        elif not head or (formats.decode_text(head, complete=len(head) == info.file_size) is not None and not head.startswith(b"#!")):
            continue  # labels, captions, a README
        else:
            raise UnsupportedMediaType(
                "Zip archives may hold images (PNG, JPEG, GIF, BMP, TIFF, WebP) and text label files only.",
                {"detected": formats.describe(head) if not head.startswith(b"PK") else "a nested archive", "entry": info.filename[:200]},
            )
    return kinds


def image_kind(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, kind in _IMAGES:
        if head.startswith(magic):
            return kind
    return None


