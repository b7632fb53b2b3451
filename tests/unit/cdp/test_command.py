"""Strict parsing of client CDP messages: what is refused, and what Chrome is sent instead."""

from __future__ import annotations

import json

import pytest

from browserfleet.cdp.command import (
    INVALID_REQUEST,
    MAX_DEPTH,
    PARSE_ERROR,
    Command,
    CommandError,
    parse_command,
    plain_envelope,
)


def test_a_plain_command_parses_and_re_serializes_canonically() -> None:
    command = parse_command(b' {"params": {"a": [1, 2.5, "\\u00e9"]}, "method": "X.y", "id": 7} ')
    assert command == Command(7, "X.y", {"a": [1, 2.5, "é"]})
    assert command.encode() == '{"id":7,"method":"X.y","params":{"a":[1,2.5,"é"]}}'.encode()


def test_the_fast_way_builds_the_very_command_the_dataclass_would() -> None:
    command = parse_command(b'{"id": 3, "method": "A.b", "params": {"x": 1}, "sessionId": "S"}')
    built = Command(3, "A.b", {"x": 1}, "S", plain=True)
    assert type(command) is Command
    assert command == built
    assert (command.plain, command.encode()) == (True, built.encode())
    with pytest.raises(AttributeError):
        command.method = "Browser.close"  # type: ignore[misc]  # still frozen


def test_a_flattened_session_command_keeps_its_session_id_in_replies() -> None:
    command = parse_command(b'{"id": 1, "method": "Browser.close", "sessionId": "S"}')
    assert json.loads(command.result()) == {"id": 1, "result": {}, "sessionId": "S"}
    assert json.loads(command.refusal("no").reply())["sessionId"] == "S"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\xff\xfe", PARSE_ERROR),  # not UTF-8
        (b'{"id": 1, "method": "A.b"', PARSE_ERROR),  # truncated
        (b'{"id": 1, "method": "A.b", "params": {"x": NaN}}', PARSE_ERROR),
        (b'{"id": 1, "method": "A.b", "params": {"x": Infinity}}', PARSE_ERROR),
        (b'{"id": 1, "method": "A.b", "method": "Browser.close"}', PARSE_ERROR),  # duplicate
        (b'{"id": 1, "method": "A.b", "params": {"p": {"k": 1, "k": 2}}}', PARSE_ERROR),  # deep
        (b'{"id": 1, "method": "A.b", "params": {"s": "\\ud800"}}', PARSE_ERROR),  # lone surrogate
        (b"[" * 100_000, PARSE_ERROR),  # nesting deeper than any parser should follow
        (b'[{"id": 1, "method": "Browser.close"}]', INVALID_REQUEST),  # batch
        (b'"Browser.close"', INVALID_REQUEST),
        (b'{"id": 1.0, "method": "Browser.close"}', INVALID_REQUEST),  # float id
        (b'{"id": 1e0, "method": "Browser.close"}', INVALID_REQUEST),
        (b'{"id": true, "method": "Browser.close"}', INVALID_REQUEST),
        (b'{"id": "1", "method": "Browser.close"}', INVALID_REQUEST),
        (b'{"id": -1, "method": "Browser.close"}', INVALID_REQUEST),
        (b'{"id": 2147483648, "method": "Browser.close"}', INVALID_REQUEST),
        (b'{"method": "Browser.close"}', INVALID_REQUEST),  # no id
        (b'{"id": 1}', INVALID_REQUEST),  # no method
        (b'{"id": 1, "method": ["Browser.close"]}', INVALID_REQUEST),
        (b'{"id": 1, "method": "A.b", "params": []}', INVALID_REQUEST),
        (b'{"id": 1, "method": "A.b", "sessionId": 5}', INVALID_REQUEST),
        (b'{"id": 1, "method": "A.b", "extra": 1}', INVALID_REQUEST),
    ],
)
def test_anything_but_a_strict_command_is_an_error_reply(message: bytes, code: int) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(message)
    reply = json.loads(caught.value.reply())
    assert reply["error"]["code"] == code
    assert "result" not in reply


def test_an_error_reply_names_the_id_when_it_was_valid() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(b'{"id": 4, "method": "A.b", "params": 3}')
    assert json.loads(caught.value.reply())["id"] == 4


def test_the_largest_id_is_accepted() -> None:
    assert parse_command(b'{"id": 2147483647, "method": "A.b"}').id == 2**31 - 1


def test_numbers_past_64_bits_and_escapes_survive_the_round_trip() -> None:
    big = b'{"id": 1, "method": "A.b", "params": {"n": 123456789012345678901234567890}}'
    sent = json.loads(parse_command(big).encode())["params"]["n"]
    assert float(sent) == float(123456789012345678901234567890)  # the double Chrome reads
    escaped = b'{"id": 1, "method": "A.\\u0062", "params": {"s": "\\ud83d\\ude00"}}'
    command = parse_command(escaped)
    assert (command.method, command.params["s"]) == ("A.b", "\U0001f600")


def test_the_general_way_reads_integers_past_64_bits_exactly_as_the_fast_way_does() -> None:
    # Over 1000 brackets (so the fast way leaves it to the general one), yet shallow.
    brackets = b"[]," * (MAX_DEPTH + 1)
    for n in (-(2**63) - 1, 2**64, 2**70):
        text = b'{"id":1,"method":"A.b","params":{"b":[' + brackets + b'[]],"n":%d}}' % n
        assert plain_envelope(text) is None
        command = parse_command(text)
        assert command.plain and command.params["n"] == n
        assert json.loads(command.encode())["params"]["n"] == n


@pytest.mark.parametrize(
    "message",
    [
        b'{"id": 1, "method": "A.b", "params": {"a": 1, "a": 2}}',  # plain text: fast path
        b'{"id": 1, "method": "A.b", "params": {"a": 1, "\\u0061": 2}}',  # escaped: slow path
        b'{"id": 1, "method": "A.b", "params": {"x": {"k": 1}, "y": {"k": 1, "k": 1}}}',
        # escaped quotes the re-encoding writes as \" would make up for the quotes of the
        # dropped key: text with a backslash never takes the quote-counting way
        b'{"id": 1, "method": "A.b", "params": {"k": 1, "k": "\\u0022\\u0022"}}',
    ],
)
def test_duplicates_are_found_whichever_reader_runs(message: bytes) -> None:
    assert plain_envelope(message) is None
    with pytest.raises(CommandError):
        parse_command(message)


def test_the_same_key_in_different_objects_is_no_duplicate() -> None:
    message = b'{"id": 1, "method": "A.b", "params": {"x": {"k": 1}, "y": {"k": 2}}}'
    assert parse_command(message).params == {"x": {"k": 1}, "y": {"k": 2}}
