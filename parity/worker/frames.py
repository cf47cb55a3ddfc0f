"""The frames between a worker and the judge (both sides): a JSON header and float64 arrays, length-prefixed
and size-capped; a frame the judge does not accept is refused, never used."""

import json
import os
import select
import struct
import time

FRAME = struct.Struct("<II")  # header bytes, payload bytes
MAX_HEADER = 1 << 20  # a header is a few KB (an ops result, a record's names and shapes)
MAX_PAYLOAD = 1 << 30  # the largest record the judge accepts; a run's is smaller still (checked per frame)


# ---- frames (both sides) ---------------------------------------------------------------------------------------

def write_frame(fd, header, arrays=()):
    """One frame: the header (JSON) and float64 arrays, named in the header with their shapes."""
    import numpy as np

    names, chunks = [], []
    for name, a in arrays:
        a = np.asarray(a, dtype="<f8")  # (not ascontiguousarray, which makes a 0-d loss 1-d)
        names.append([name, list(a.shape)])
        chunks.append(a.tobytes(order="C"))
    head = json.dumps(dict(header, arrays=names)).encode()
    payload = b"".join(chunks)
    data = FRAME.pack(len(head), len(payload)) + head + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd, n, deadline):
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd, deadline, max_payload=MAX_PAYLOAD):
    """(header, {name: array}); ValueError for a frame the judge does not accept; TimeoutError, EOFError."""
    import numpy as np

    head_len, payload_len = FRAME.unpack(_read_exact(fd, FRAME.size, deadline))
    if head_len > MAX_HEADER or payload_len > max_payload:
        raise ValueError(f"a frame of {head_len} + {payload_len} bytes, over the limit")
    header = json.loads(_read_exact(fd, head_len, deadline))
    payload = _read_exact(fd, payload_len, deadline) if payload_len else b""
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or \
            not isinstance(header.get("arrays"), list):
        raise ValueError("a frame without its type")
    arrays, at = {}, 0
    for item in header["arrays"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 31 for d in item[1])):
            raise ValueError("an array described wrongly")
        name, shape = item
        size = 8 * int(np.prod(shape, dtype=np.int64))
        if at + size > len(payload) or name in arrays:
            raise ValueError("arrays that do not fit the payload")
        arrays[name] = np.frombuffer(payload, dtype="<f8", count=size // 8, offset=at).reshape(shape)
        at += size
    if at != len(payload):
        raise ValueError("a payload longer than its arrays")
    return header, arrays
