"""A client's CDP message, parsed strictly, and the one serialization that goes on to Chrome.

Pure. Chrome sees either the client's own bytes, when they are plain (no escape, no repeated
key: text every JSON reader reads alike) and the policy forwards them unchanged, or
`Command.encode()`, a canonical JSON text of exactly what was checked; so no quirk of Chrome's
JSON reader (duplicate keys, escapes, number forms) can make it read a command other than the
one the policy decided on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import orjson

# JSON-RPC error codes, as Chrome itself uses them for malformed messages.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
SERVER_ERROR = -32000
MAX_ID = 2**31 - 1  # Chrome reads the id as a 32-bit int
_KNOWN_KEYS = frozenset({"id", "method", "params", "sessionId"})

JsonObject = dict[str, Any]


class CommandError(Exception):
    """The message is not a command the gateway forwards; `reply()` is the client's answer."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        command_id: int | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.command_id, self.session_id = command_id, session_id

    def reply(self) -> bytes:
        answer: JsonObject = {}
        if self.command_id is not None:
            answer["id"] = self.command_id
        answer["error"] = {"code": self.code, "message": self.message}
        if self.session_id is not None:
            answer["sessionId"] = self.session_id
        return _dump(answer)


@dataclass(frozen=True, slots=True)
class Command:
    """One client command: an integer id, a method, an object of params, maybe a session.

    `plain`: it was read from text with no escape and no repeated key in any object, which any
    JSON reader reads alike, so the client's own bytes may go to Chrome unchanged. A rewritten copy
    (`dataclasses.replace`) is a new object: only the very command parsed may use them.
    """

    id: int
    method: str
    params: JsonObject
    session_id: str | None = None
    plain: bool = field(default=False, repr=False, compare=False)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self) -> bytes:
        """The canonical text Chrome receives (keys in a fixed order, no insignificant bytes);
        UnicodeEncodeError for a lone surrogate. Computed once."""
        if self._wire is None:
            message: JsonObject = {"id": self.id, "method": self.method}
            if self.params:
                message["params"] = self.params
            if self.session_id is not None:
                message["sessionId"] = self.session_id
            object.__setattr__(self, "_wire", _dump(message))  # a cache, not a change of value
        assert self._wire is not None
        return self._wire

    def result(self, result: JsonObject | None = None) -> bytes:
        """A success answer to this command, sent by the gateway instead of Chrome."""
        answer: JsonObject = {"id": self.id, "result": result or {}}
        if self.session_id is not None:
            answer["sessionId"] = self.session_id
        return _dump(answer)

    def refusal(self, message: str) -> CommandError:
        return CommandError(SERVER_ERROR, message, command_id=self.id, session_id=self.session_id)


def parse_command(payload: bytes) -> Command:
    """The command in one whole message; CommandError when it is not a strict, valid one.

    Refused: invalid UTF-8, invalid JSON (NaN and Infinity included), a duplicate key at any
    depth, lone surrogates, anything but an object, an id that is not an integer token in
    0..2^31-1, a missing or non-string method, params that are not an object, a non-string
    sessionId, any other field.
    """
    envelope = plain_envelope(payload)
    if envelope is not None:  # the hot path: a plain, valid command, checked in one go
        params, session_id = envelope.params, envelope.sessionId
        return _plain_command(
            envelope.id,
            envelope.method,
            {} if params is msgspec.UNSET else params,
            None if session_id is msgspec.UNSET else session_id,
        )
    return _parse_strictly(payload)


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """A command's fields, as msgspec reads them and checks their types in one pass (C):
    the same rules `_parse_strictly` applies one by one. UNSET: the field is absent."""

    id: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
    method: Annotated[str, msgspec.Meta(min_length=1)]
    params: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    sessionId: str | msgspec.UnsetType | None = msgspec.UNSET  # the wire name


_read_envelope = msgspec.json.Decoder(Envelope).decode
_read_any = msgspec.json.Decoder().decode  # any JSON value; integers past 64 bits stay exact
_encode = msgspec.json.Encoder().encode  # any JSON value (integers past 64 bits too)
# Nesting deeper than this is refused (msgspec stops near Python's recursion limit); only a
# text longer than twice it can nest that deep, so shorter ones skip counting brackets.
MAX_DEPTH = 1000


def plain_envelope(payload: bytes) -> Envelope | None:
    """The fields of `payload` when it is a plain command: a valid one (as parse_command says)
    in text with no escape and no repeated key in any object, which every JSON reader reads
    alike, so the client's own bytes may go on to Chrome. None for anything else (valid or not:
    parse_command's general way decides).

    The hot path of every client message, so its checks are C calls: msgspec reads the text
    and checks the fields' types; a repeated key shows in the quotes. Without escapes every
    quote opens or closes a string and no string holds one, so the text has two quotes per key
    and string value, and so has msgspec's encoding of what it read, unless a repeated key (and
    maybe its value) was dropped by the reading.
    """
    if b"\\" in payload:
        return None
    if len(payload) > 2 * MAX_DEPTH and payload.count(b"[") + payload.count(b"{") > MAX_DEPTH:
        return None  # maybe deeper than any reader should take; _parse_strictly decides
    try:
        envelope = _read_envelope(payload)
    except (msgspec.DecodeError, RecursionError):
        return None
    if payload.count(b'"') != _encode(envelope).count(b'"'):
        return None
    return envelope


def _plain_command(
    command_id: int, method: str, params: JsonObject, session_id: str | None
) -> Command:
    """Command(command_id, method, params, session_id, plain=True), built through its slots:
    this runs for every client message, and a frozen dataclass's __init__ (a checked
    object.__setattr__ per field) costs several times more. The object is the same."""
    command = _new_object(Command)
    _SET_ID(command, command_id)
    _SET_METHOD(command, method)
    _SET_PARAMS(command, params)
    _SET_SESSION_ID(command, session_id)
    _SET_PLAIN(command, True)
    _SET_WIRE(command, None)
    return command


_new_object = object.__new__
_SET_ID, _SET_METHOD, _SET_PARAMS, _SET_SESSION_ID, _SET_PLAIN, _SET_WIRE = (
    Command.__dict__[name].__set__
    for name in ("id", "method", "params", "session_id", "plain", "_wire")
)
if len(Command.__slots__) != 6:  # a new field must be set above too
    raise AssertionError("_plain_command sets every field of Command")


def _parse_strictly(payload: bytes) -> Command:
    """parse_command's general way, which names exactly what is wrong."""
    try:
        value, plain = _loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CommandError(PARSE_ERROR, f"Message is not strict JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CommandError(INVALID_REQUEST, "A message must be a JSON object (no batches)")
    command_id = value.get("id")
    session_id = value.get("sessionId")
    if not isinstance(session_id, str | None):
        raise CommandError(INVALID_REQUEST, "sessionId must be a string")
    if type(command_id) is not int or not 0 <= command_id <= MAX_ID:
        raise CommandError(
            INVALID_REQUEST, "id must be an integer from 0 to 2147483647", session_id=session_id
        )
    method, params = value.get("method"), value.get("params", {})
    if not isinstance(method, str) or not method:
        raise CommandError(
            INVALID_REQUEST, "method must be a string", command_id=command_id, session_id=session_id
        )
    if not isinstance(params, dict):
        raise CommandError(
            INVALID_REQUEST,
            "params must be an object",
            command_id=command_id,
            session_id=session_id,
        )
    if unknown := value.keys() - _KNOWN_KEYS:
        raise CommandError(
            INVALID_REQUEST,
            f"unknown message field {sorted(unknown)[0]!r}",
            command_id=command_id,
            session_id=session_id,
        )
    command = Command(command_id, method, params, session_id, plain)
    if not plain:  # escapes may spell a lone surrogate, which cannot be sent: refuse it here
        try:
            command.encode()
        except UnicodeEncodeError:
            raise CommandError(
                PARSE_ERROR, "Message holds a lone surrogate", command_id=command_id
            ) from None
    return command


def _loads(payload: bytes) -> tuple[Any, bool]:
    """Strict JSON, and whether it is plain (plain_envelope's rule: no escape, no key dropped
    as repeated). Text with no backslash has no escapes, so a repeated key drops two quotes or
    more from msgspec's reading (strict UTF-8, no NaN, no lone surrogate, integers of any size
    kept exact, bounded depth): without one, msgspec decides alone, reading every number as
    plain_envelope does. Anything else takes the standard library's reader with a duplicate
    check in every object."""
    if b"\\" not in payload:
        value = _read_any(payload)
        if payload.count(b'"') == _encode(value).count(b'"'):
            return value, True
    return _DECODER.decode(payload.decode("utf-8")), False


def _unique_keys(pairs: list[tuple[str, Any]]) -> JsonObject:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _dump(value: JsonObject) -> bytes:
    """Compact JSON; integers past 64 bits (and lone surrogates, which then fail to encode)
    take the standard library's way."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value).encode()
