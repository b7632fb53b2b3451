"""Property: the gateway's hot path (plain_envelope, forwarded_unchanged) never lets through what
the general way (parse_command's strict reading, then decide) would refuse or change.

Hypothesis writes command texts close to the edge (tests/support/command_texts.py): ids of
every form, methods the policy handles or not, params nested with repeated keys (in one object
or in two), escapes, whitespace, null, unknown fields and top-level keys written twice.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from command_texts import command_text
from hypothesis import given, settings

from browserfleet.cdp.command import (
    MAX_DEPTH,
    CommandError,
    _parse_strictly,
    parse_command,
    plain_envelope,
)
from browserfleet.cdp.policy import RULES, Forward, SessionPolicy, decide, forwarded_unchanged

POLICY = SessionPolicy(PurePosixPath("/s/downloads"), PurePosixPath("/s/uploads"))


def has_repeated_key(text: bytes) -> bool:
    def check(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise KeyError("repeated")
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=check)
    except KeyError:
        return True
    return False


@settings(max_examples=600, deadline=None)
@given(text=command_text())
def test_the_hot_path_agrees_with_the_general_way(text: bytes) -> None:
    envelope = plain_envelope(text)
    try:
        strict = _parse_strictly(text)
    except CommandError:
        strict = None
    # Plain in one reading exactly when valid and plain in the other.
    assert (envelope is not None) == (strict is not None and strict.plain), text
    if envelope is None:
        assert not forwarded_unchanged(text)
        return
    assert b"\\" not in text and not has_repeated_key(text)
    command = parse_command(text)
    assert command == strict and command.plain
    assert (command.id, command.method) == (envelope.id, envelope.method)
    decision = decide(command, POLICY)
    unchanged = isinstance(decision, Forward) and decision.command is command
    # The hot path takes only methods the policy has no rule for, and those go on as they came.
    assert forwarded_unchanged(text) == (command.method not in RULES), text
    assert unchanged or not forwarded_unchanged(text), text


def test_a_deep_text_is_left_to_the_general_way() -> None:
    deep = b'{"id":1,"method":"A.b","params":{"x":' + b"[" * 1030 + b"]" * 1030 + b"}}"
    assert plain_envelope(deep) is None
    shallow_but_long = b'{"id":1,"method":"A.b","params":{"x":[' + b"[]," * MAX_DEPTH + b"[]]}}"
    assert plain_envelope(shallow_but_long) is None  # counted, not measured: the general way
    assert parse_command(shallow_but_long).plain


def test_params_written_empty_or_left_out_are_both_plain() -> None:
    for text in (b'{"id":1,"method":"A.b"}', b'{"id":1,"method":"A.b","params":{}}'):
        envelope = plain_envelope(text)
        assert envelope is not None and forwarded_unchanged(text)
        assert parse_command(text).params == {}
    with_null_session = plain_envelope(b'{"id":1,"method":"A.b","sessionId":null}')
    assert with_null_session is not None and with_null_session.sessionId is None
