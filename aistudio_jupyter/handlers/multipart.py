"""A streaming multipart/form-data parser: parts' bodies come out as they arrive.

Tornado's own parser needs the whole request in memory; this one holds at most one network
chunk plus a boundary's length, whatever the size of the file inside.
"""

from __future__ import annotations

import re
from email.message import Message

from ..errors import BadRequest

_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")
MAX_HEADER_BYTES = 16 * 1024


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type, or ``BadRequest``."""
    msg = Message()
    msg["content-type"] = content_type
    boundary = msg.get_param("boundary")
    if msg.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not _BOUNDARY.match(boundary) or boundary.endswith(" "):
        raise BadRequest("Send the file as multipart/form-data with a boundary.", {"content_type": content_type[:100]})
    return boundary.encode("ascii")


class Part:
    """One part's headers: its form field name, file name and declared content type."""

    def __init__(self, raw: bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("A multipart header is not UTF-8.") from None
        msg = Message()
        for line in text.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise BadRequest("A multipart header line is malformed.")
            msg[name.strip()] = value.strip()
        disposition = msg.get("content-disposition", "")
        if not disposition.lower().startswith("form-data"):
            raise BadRequest("Each part needs Content-Disposition: form-data.")
        self.name = msg.get_param("name", header="content-disposition")
        filename = msg.get_filename()  # understands RFC 2231 filename*=
        self.filename = filename if isinstance(filename, str) else None
        self.content_type = msg.get("content-type")


class MultipartParser:
    """``feed(bytes)`` → events: ``("part", Part)``, ``("data", bytes)``, ``("end", None)`` per part."""

    def __init__(self, boundary: bytes):
        self._first = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._buf = b""
        self._state = "preamble"
        self.finished = False

    def feed(self, data: bytes) -> list[tuple[str, object]]:
        self._buf += data
        events: list[tuple[str, object]] = []
        while True:
            if self._state == "preamble":
                at = self._buf.find(self._first)
                if at < 0:
                    self._buf = self._buf[-len(self._first) :]
                    return events
                self._buf = self._buf[at + len(self._first) :]
                self._state = "after_boundary"
            elif self._state == "after_boundary":
                if len(self._buf) < 2:
                    return events
                if self._buf.startswith(b"--"):
                    self._state, self.finished, self._buf = "epilogue", True, b""
                    return events
                if not self._buf.startswith(b"\r\n"):
                    raise BadRequest("The multipart body is malformed after a boundary.")
                self._buf = self._buf[2:]
                self._state = "headers"
            elif self._state == "headers":
                at = self._buf.find(b"\r\n\r\n")
                if at < 0:
                    if len(self._buf) > MAX_HEADER_BYTES:
                        raise BadRequest("A multipart part's headers are too long.")
                    return events
                events.append(("part", Part(self._buf[:at])))
                self._buf = self._buf[at + 4 :]
                self._state = "body"
            elif self._state == "body":
                at = self._buf.find(self._delimiter)
                if at < 0:
                    # keep what could be the start of a delimiter split across chunks
                    keep = len(self._delimiter) - 1
                    if len(self._buf) > keep:
                        events.append(("data", self._buf[:-keep]))
                        self._buf = self._buf[-keep:]
                    return events
                if at:
                    events.append(("data", self._buf[:at]))
                events.append(("end", None))
                self._buf = self._buf[at + len(self._delimiter) :]
                self._state = "after_boundary"
            else:  # epilogue: ignored, as RFC 2046 says
                self._buf = b""
                return events
