"""The compiled hot path (cdp/_plain.c): plain_method says a frame carries a plain command of
some method only when plain_envelope, the Python reading, says the same of its payload.

Its "no" is never a verdict (the general way then decides), so the property that matters is
one-sided: whatever it takes, the Python reading takes too, with the same method. The other
side is held by examples and by a generator of commands inside its grammar, which it must all
take: a scanner that said None to everything would pass the first property and fail these.
"""

from __future__ import annotations

import json
import struct

import pytest
from command_texts import command_text
from hypothesis import given, settings
from hypothesis import strategies as st

from browserfleet.cdp._plain import plain_method
from browserfleet.cdp.command import plain_envelope
from browserfleet.cdp.frames import OP_BINARY, OP_TEXT, client_frame

LIMIT = 1 << 20


def frame(payload: bytes) -> bytes:
    return client_frame(OP_TEXT, payload)


def python_says(payload: bytes) -> str | None:
    envelope = plain_envelope(payload)
    return None if envelope is None else envelope.method


def agrees_where_it_takes(payload: bytes) -> str | None:
    """plain_method of the payload's frame, checked against the Python reading when it takes."""
    method = plain_method(frame(payload), LIMIT)
    if method is not None:
        assert python_says(payload) == method, payload
    return method


TAKEN = [
    b'{"id":1,"method":"Runtime.evaluate"}',
    b' {\t"method" :\r\n"A.b" , "id" : 0 } \n',
    b'{"id":2147483647,"method":"A.b","params":{}}',
    b'{"id":1,"method":"A.b","params":{"a":[1,-2,0.5,-0.0,1e10,2E-99,3e+5,[],{}],"b":null}}',
    b'{"id":1,"method":"A.b","params":{"t":true,"f":false,"s":" !#$%&()*+,-./:;<=>?@[]^_`{|}~"}}',
    b'{"id":1,"method":"A.b","sessionId":null}',
    b'{"sessionId":"S1","params":{"x":1},"method":"A.b","id":7}',
    b'{"id":1,"method":"A.b","params":{"a":{"b":1},"c":{"b":2}}}',  # one key in two objects
    b'{"id":1,"method":"A.b","params":{"ab":1,"a":2,"b":3,"ba":4}}',  # prefixes are not repeats
    b'{"id":1,"method":"A.b","params":{"":1,"x":{"":2}}}',
]


@pytest.mark.parametrize("payload", TAKEN)
def test_a_plain_command_in_its_grammar_is_taken_with_its_method(payload: bytes) -> None:
    method = agrees_where_it_takes(payload)
    assert method is not None and method == json.loads(payload)["method"]


DECLINED = {
    "float id": b'{"id":1.0,"method":"A.b"}',
    "exponent id": b'{"id":1e0,"method":"A.b"}',
    "negative id": b'{"id":-1,"method":"A.b"}',
    "id past 2^31-1": b'{"id":2147483648,"method":"A.b"}',
    "id of eleven digits": b'{"id":10000000000,"method":"A.b"}',
    "leading zero id": b'{"id":01,"method":"A.b"}',
    "string id": b'{"id":"1","method":"A.b"}',
    "no id": b'{"method":"A.b"}',
    "no method": b'{"id":1}',
    "empty method": b'{"id":1,"method":""}',
    "method not a string": b'{"id":1,"method":1}',
    "params an array": b'{"id":1,"method":"A.b","params":[]}',
    "params null": b'{"id":1,"method":"A.b","params":null}',
    "sessionId a number": b'{"id":1,"method":"A.b","sessionId":1}',
    "unknown field": b'{"id":1,"method":"A.b","other":1}',
    "method twice": b'{"id":1,"method":"A.b","method":"Browser.close"}',
    "id twice": b'{"id":1,"id":1,"method":"A.b"}',
    "nested repeat": b'{"id":1,"method":"A.b","params":{"a":{"b":1,"b":2}}}',
    "repeat in an array's object": b'{"id":1,"method":"A.b","params":{"a":[{"b":1,"b":2}]}}',
    "escape": b'{"id":1,"method":"A.b","params":{"a":"\\u0022"}}',
    "escaped method": b'{"id":1,"method":"Browser.clos\\u0065"}',
    "non-ASCII": '{"id":1,"method":"A.b","params":{"a":"é"}}'.encode(),
    "control byte in a string": b'{"id":1,"method":"A.b","params":{"a":"\x01"}}',
    "newline in a string": b'{"id":1,"method":"A.b","params":{"a":"\n"}}',
    "NaN": b'{"id":1,"method":"A.b","params":{"a":NaN}}',
    "Infinity": b'{"id":1,"method":"A.b","params":{"a":Infinity}}',
    "three-digit exponent": b'{"id":1,"method":"A.b","params":{"a":1e308}}',
    "long number": b'{"id":1,"method":"A.b","params":{"a":123456789012345678901}}',
    "leading zero": b'{"id":1,"method":"A.b","params":{"a":012}}',
    "bare point": b'{"id":1,"method":"A.b","params":{"a":1.}}',
    "leading point": b'{"id":1,"method":"A.b","params":{"a":.5}}',
    "plus sign": b'{"id":1,"method":"A.b","params":{"a":+1}}',
    "trailing comma": b'{"id":1,"method":"A.b","params":{"a":1,}}',
    "trailing comma at the top": b'{"id":1,"method":"A.b",}',
    "trailing comma in an array": b'{"id":1,"method":"A.b","params":{"a":[1,]}}',
    "missing colon": b'{"id":1,"method":"A.b","params":{"a" 1}}',
    "single quotes": b"{'id':1,'method':'A.b'}",
    "truncated": b'{"id":1,"method":"A.b","params":{"a":[1,2',
    "truncated literal": b'{"id":1,"method":"A.b","params":{"a":tru}}',
    "text after the object": b'{"id":1,"method":"A.b"}x',
    "second object": b'{"id":1,"method":"A.b"}{"id":2,"method":"Browser.close"}',
    "batch": b'[{"id":1,"method":"A.b"}]',
    "vertical tab as space": b'{"id":1,\x0b"method":"A.b"}',
    "byte order mark": b'\xef\xbb\xbf{"id":1,"method":"A.b"}',
    "empty": b"",
}


@pytest.mark.parametrize("payload", DECLINED.values(), ids=DECLINED.keys())
def test_anything_outside_its_grammar_is_left_to_the_general_way(payload: bytes) -> None:
    assert plain_method(frame(payload), LIMIT) is None


def nested(depth: int) -> bytes:
    """A command whose params nest `depth` objects deep (params itself is the first), so
    `depth` + 1 levels with the command's own object."""
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"id":1,"method":"A.b","params":' + inner + b"}"


def test_nesting_is_taken_to_64_levels_and_left_to_the_general_way_past_them() -> None:
    assert agrees_where_it_takes(nested(63)) == "A.b"
    assert plain_method(frame(nested(64)), LIMIT) is None
    assert plain_method(frame(nested(10_000)), LIMIT) is None  # never recursed that deep
    arrays = b'{"id":1,"method":"A.b","params":{"a":' + b"[" * 62 + b"]" * 62 + b"}}"
    assert agrees_where_it_takes(arrays) == "A.b"
    too_deep = b'{"id":1,"method":"A.b","params":{"a":' + b"[" * 63 + b"]" * 63 + b"}}"
    assert plain_method(frame(too_deep), LIMIT) is None


def with_keys(count: int, repeat_last: bool = False) -> bytes:
    keys = [f"k{i}" for i in range(count)]
    if repeat_last:
        keys[-1] = keys[0]
    members = ",".join(f'"{key}":{i}' for i, key in enumerate(keys))
    return b'{"id":1,"method":"A.b","params":{' + members.encode() + b"}}"


def test_an_object_of_up_to_32_keys_is_checked_for_repeats_and_more_are_left_aside() -> None:
    assert agrees_where_it_takes(with_keys(32)) == "A.b"
    assert plain_method(frame(with_keys(32, repeat_last=True)), LIMIT) is None
    assert plain_method(frame(with_keys(33)), LIMIT) is None
    assert python_says(with_keys(33)) == "A.b"  # valid: the general way forwards it


def test_a_payload_past_the_on_stack_buffer_is_read_whole() -> None:
    big = json.dumps({"id": 3, "method": "A.b", "params": {"a": "x" * 60_000}}).encode()
    assert agrees_where_it_takes(big) == "A.b"
    repeated = big[:-2] + b',"a":1}}'
    assert plain_method(frame(repeated), LIMIT) is None


def test_only_one_whole_final_masked_text_frame_of_a_short_length_is_read() -> None:
    payload = b'{"id":1,"method":"A.b"}'
    whole = frame(payload)
    assert plain_method(whole, LIMIT) == "A.b"
    assert plain_method(whole[:-1], LIMIT) is None  # cut short
    assert plain_method(whole + frame(payload), LIMIT) is None  # two frames
    assert plain_method(bytes([0x01]) + whole[1:], LIMIT) is None  # not final
    assert plain_method(client_frame(OP_BINARY, payload), LIMIT) is None
    assert plain_method(bytes([0x81 | 0x40]) + whole[1:], LIMIT) is None  # a reserved bit
    unmasked = bytes([0x81, len(payload)]) + payload
    assert plain_method(unmasked, LIMIT) is None
    wide = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(payload)) + whole[2:]
    assert plain_method(wide, LIMIT) is None  # a 64-bit length: the general way's
    assert plain_method(whole[:5], LIMIT) is None


def test_the_limit_is_the_callers_cap_and_never_past_65535() -> None:
    payload = b'{"id":1,"method":"A.b"}'
    assert plain_method(frame(payload), len(payload)) == "A.b"
    assert plain_method(frame(payload), len(payload) - 1) is None
    over = json.dumps({"id": 1, "method": "A.b", "params": {"a": "x" * 65_536}}).encode()
    assert python_says(over) == "A.b"
    assert plain_method(frame(over), LIMIT) is None  # a 64-bit length: not this path's


def test_anything_but_bytes_and_an_int_is_a_type_error() -> None:
    payload = frame(b'{"id":1,"method":"A.b"}')
    for args in ((bytearray(payload), 10), (payload, "10"), (payload,), (payload, 1, 2)):
        with pytest.raises(TypeError):
            plain_method(*args)


@settings(max_examples=1500, deadline=None)
@given(text=command_text())
def test_whatever_it_takes_the_python_reading_takes_with_the_same_method(text: bytes) -> None:
    agrees_where_it_takes(text)


# Commands inside the scanner's grammar: every one of them must be taken.
KEYS = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    max_size=6,
)
PRINTABLE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    max_size=12,
)
NUMBERS = st.one_of(
    st.integers(-(10**15), 10**15).map(str),
    st.sampled_from(["0.5", "-0.0", "1e10", "2E-99", "3e+5", "-12.25e3", "0"]),
)
SCALARS = st.one_of(
    NUMBERS, PRINTABLE.map(lambda s: f'"{s}"'), st.sampled_from(["true", "false", "null"])
)
SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])


def containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
    return st.one_of(arrays, objects(inner))


def objects(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.dictionaries(KEYS, inner, max_size=5).map(
        lambda members: "{" + ",".join(f'"{k}" : {v}' for k, v in members.items()) + "}"
    )


PARAMS = objects(st.recursive(SCALARS, containers, max_leaves=24))


@st.composite
def plain_commands(draw: st.DrawFn) -> tuple[bytes, str]:
    method = draw(PRINTABLE.filter(bool))
    members = [f'"id":{draw(st.integers(0, 2**31 - 1))}', f'"method":"{method}"']
    if draw(st.booleans()):
        members.append(f'"params":{draw(PARAMS)}')
    if draw(st.booleans()):
        session = draw(st.sampled_from(["null", '"S"', '""']))
        members.append(f'"sessionId":{session}')
    space = draw(SPACE)
    text = space + "{" + space + ("," + space).join(draw(st.permutations(members))) + "}" + space
    return text.encode(), method


@settings(max_examples=1500, deadline=None)
@given(case=plain_commands())
def test_every_command_inside_its_grammar_is_taken_as_the_python_reading_takes_it(
    case: tuple[bytes, str],
) -> None:
    text, method = case
    assert agrees_where_it_takes(text) == method


@settings(max_examples=2000, deadline=None)
@given(case=plain_commands(), data=st.data())
def test_a_command_damaged_anywhere_is_taken_only_if_the_python_reading_takes_it(
    case: tuple[bytes, str], data: st.DataObject
) -> None:
    text = bytearray(case[0])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        byte = data.draw(st.sampled_from(list(b'"\\{}[],:-.eE01 \x00\x80\xff')))
        match data.draw(st.sampled_from(["insert", "replace", "delete"])):
            case "insert":
                text[at:at] = bytes([byte])
            case "replace" if at < len(text):
                text[at] = byte
            case _:
                del text[at : at + 1]
    agrees_where_it_takes(bytes(text))


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=300), limit=st.integers(0, 70_000))
def test_any_bytes_at_all_are_read_safely(data: bytes, limit: int) -> None:
    method = plain_method(data, limit)
    method_of_frame = plain_method(frame(data), limit)
    assert method is None or isinstance(method, str)
    if method_of_frame is not None:
        assert python_says(data) == method_of_frame
