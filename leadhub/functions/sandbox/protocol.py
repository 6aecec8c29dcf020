"""What crosses the pipe between the pool and a worker: length-prefixed JSON
frames, with a small tagged encoding for the values records carry (Decimal,
date, datetime, time).

JSON, never pickle: the worker runs untrusted code, so everything it sends
is decoded as plain data and can name no class or callable in the parent."""
from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import struct
from typing import Any

TAG = "$t"
HEADER = struct.Struct(">I")
MAX_DEPTH = 64
MAX_FRAME = 16 * 1024 * 1024   # larger frames mean a confused or hostile worker

_TAGGED = {"decimal": decimal.Decimal, "date": dt.date.fromisoformat,
           "datetime": dt.datetime.fromisoformat, "time": dt.time.fromisoformat}


def encode(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON data; TypeError for anything else."""
    if depth > MAX_DEPTH:
        raise TypeError("the value is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):          # int() turns an IntEnum or IntFlag into a plain number
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, dt.datetime):          # before date: a datetime is a date
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dictionary keys must be text, not {type(k).__name__}")
            out[k] = encode(v, depth + 1)
        return {TAG: "dict", "v": out} if TAG in out else out
    raise TypeError(f"a {type(value).__name__} is not data (use text, numbers, true/false, "
                    "None, lists, dicts, Decimal, date or datetime)")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {k: decode(v) for k, v in value.items()}
        if tag == "dict":
            return {k: decode(v) for k, v in value["v"].items()}
        if tag in _TAGGED and isinstance(value.get("v"), str):
            return _TAGGED[tag](value["v"])
        raise ValueError(f"unknown tagged value {tag!r}")
    return value


def dumps(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def frame(message: Any) -> bytes:
    body = dumps(message)
    return HEADER.pack(len(body)) + body


class Channel:
    """The worker's blocking end of the pipe pair (the pool has its own,
    with deadlines)."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, message: Any) -> None:
        self.send_bytes(frame(message))

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view):]

    def receive(self) -> Any:
        header = self._read(HEADER.size)
        if header is None:
            return None
        (size,) = HEADER.unpack(header)
        body = self._read(size)
        if body is None:
            return None
        return loads(body)

    def _read(self, n: int) -> bytes | None:
        chunks, need = [], n
        while need:
            chunk = os.read(self.read_fd, need)
            if not chunk:
                return None
            chunks.append(chunk)
            need -= len(chunk)
        return b"".join(chunks)
