"""Property: however a forbidden command is spelt, framed or interleaved, Chrome never receives it.

Hypothesis writes the attack (escapes, number forms for the id, whitespace, nesting, duplicate
keys, batches, fragmentation, masks, control frames in between); the relay carries it between
recording transports; what reached the browser side is decoded and read as Chrome would.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import PurePosixPath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from browserfleet.cdp.frames import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    MessageReader,
)
from browserfleet.cdp.policy import SessionPolicy
from browserfleet.cdp.relay import Counters, Relay

FORBIDDEN = [
    "Browser.close",
    "Browser.crash",
    "Browser.crashGpuProcess",
    "Target.exposeDevToolsProtocol",
    "Tethering.bind",
    "Extensions.loadUnpacked",
]
POLICY = SessionPolicy(PurePosixPath("/s/downloads"), PurePosixPath("/s/uploads"))


class Sink:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def escaped(text: str, draw: st.DrawFn) -> str:
    """The JSON string body of `text` with any characters written as \\u escapes."""
    flags = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    out = []
    for char, escape in zip(text, flags, strict=True):
        if escape:
            code = f"{ord(char):04x}"
            out.append("\\u" + (code if draw(st.booleans()) else code.upper()))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@st.composite
def attack(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(FORBIDDEN))
    ws = draw(st.sampled_from(["", " ", "\n", "\t", "\r\n  "]))
    id_text = draw(st.sampled_from(["1", "1.0", "1e0", "10E-1", "0.1e1", "-0", "1.", "01", "true"]))
    members = [f'"id"{ws}:{ws}{id_text}', f"{escaped('method', draw)}:{escaped(method, draw)}"]
    if draw(st.booleans()):  # a harmless method too: parsers that keep the first or the last
        decoy = '"method":"Runtime.evaluate"'
        members.insert(draw(st.integers(0, len(members))), decoy)
    if draw(st.booleans()):
        members.append('"params":{"targetId":"T","path":"/x","p":{"q":[1,{"r":2}]}}')
    if draw(st.booleans()):
        members.append('"sessionId":"S"')
    order = draw(st.permutations(members))
    text = "{" + ws + ("," + ws).join(order) + ws + "}"
    if draw(st.booleans()):
        text = "[" + text + "]"  # a batch
    elif draw(st.booleans()):
        text = '{"id":2,"method":"Runtime.evaluate","params":{"nested":' + text + "}}"
    return text.encode("utf-8")


@st.composite
def framing(draw: st.DrawFn, payload: bytes) -> bytes:
    """`payload` as one message in 1-4 fragments, random masks, control frames in between."""
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
    out = b""
    for index, part in enumerate(parts):
        code = opcode if index == 0 else OP_CONTINUATION
        out += masked(
            code, part, fin=index == len(parts) - 1, mask=draw(st.binary(min_size=4, max_size=4))
        )
        if draw(st.booleans()):
            out += masked(
                draw(st.sampled_from([OP_PING, OP_PONG])), b"x", fin=True, mask=os.urandom(4)
            )
    return out


def masked(opcode: int, payload: bytes, *, fin: bool, mask: bytes) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def methods_chrome_reads(data: bytes) -> list[object]:
    """Every method name in what Chrome received, read leniently (duplicates: last and first)."""
    found: list[object] = []
    for item in MessageReader(1 << 30).feed(data):
        payload = getattr(item, "payload", None)
        if payload is None:
            continue
        last = json.loads(payload)
        first = json.loads(payload, object_pairs_hook=lambda pairs: dict(reversed(pairs)))
        for parsed in (last, first):
            if isinstance(parsed, dict):
                found.append(parsed.get("method"))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_no_variant_of_a_forbidden_command_reaches_the_browser(data: st.DataObject) -> None:
    payload = data.draw(attack())
    stream = data.draw(framing(payload))
    chunk = data.draw(st.integers(1, max(1, len(stream))))
    client, browser = Sink(), Sink()
    relay = Relay(client, browser, policy=POLICY, counters=Counters())  # type: ignore[arg-type]
    for start in range(0, len(stream), chunk):
        relay.from_client(stream[start : start + chunk])
    reached = methods_chrome_reads(bytes(browser.written))
    assert not set(FORBIDDEN) & {m for m in reached if isinstance(m, str)}, (payload, reached)
    assert client.written or reached, "each message is either answered here or forwarded"
