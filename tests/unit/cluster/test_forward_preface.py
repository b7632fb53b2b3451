"""The DevTools forwarder's handshake, as values: what a client sends and what its answer means."""

from __future__ import annotations

import pytest

from browserfleet.cluster.preface import (
    MAGIC,
    OK,
    PREFACE_BYTES,
    TOKEN_BYTES,
    UNREACHABLE,
    check_status,
    new_token,
    preface,
    preface_matches,
)

TOKEN = bytes(range(TOKEN_BYTES))


def test_a_preface_is_the_magic_then_the_token() -> None:
    sent = preface(TOKEN)
    assert sent == b"BFD1" + TOKEN
    assert len(sent) == PREFACE_BYTES == 36


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_token_of_another_size_makes_no_preface(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        preface(bytes(size))


def test_new_tokens_are_random_and_full_size() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert {len(t) for t in tokens} == {TOKEN_BYTES}


def test_the_right_preface_matches() -> None:
    assert preface_matches(MAGIC + TOKEN, TOKEN)


@pytest.mark.parametrize(
    "received",
    [
        b"",
        MAGIC,
        MAGIC + TOKEN[:-1],  # short by one byte
        MAGIC + TOKEN + b"\x00",  # one byte too many
        b"BFD2" + TOKEN,  # another protocol version
        MAGIC + TOKEN[:-1] + bytes([TOKEN[-1] ^ 1]),  # one bit off, in the last byte
        MAGIC + bytes([TOKEN[0] ^ 0x80]) + TOKEN[1:],  # one bit off, in the first byte
        TOKEN + MAGIC,
        bytes(PREFACE_BYTES),
    ],
)
def test_anything_else_does_not_match(received: bytes) -> None:
    assert not preface_matches(received, TOKEN)


def test_another_forwarders_token_does_not_match() -> None:
    assert not preface_matches(preface(new_token()), TOKEN)


def test_ok_lets_the_connection_through() -> None:
    check_status(OK)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (UNREACHABLE, "browser is unreachable"),
        (b"", "closed the connection"),
        (b"\x02", "answered"),
        (b"H", "answered"),
    ],
)
def test_any_other_answer_is_a_refused_connection(answer: bytes, reason: str) -> None:
    with pytest.raises(ConnectionRefusedError, match=reason):
        check_status(answer)
