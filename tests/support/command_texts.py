"""CDP command texts close to the edge, for the property tests of the gateway's hot path.

Hypothesis writes them: ids of every form, methods the policy handles or not, params nested
with repeated keys (in one object or in two), escapes, whitespace, null, unknown fields and
top-level keys written twice.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

METHODS = ["Runtime.evaluate", "DOM.getDocument", "Browser.close", "Page.navigate", "", "A.b"]
WS = st.sampled_from(["", " ", "\n", "\t "])


def string(text: str, escape: bool) -> str:
    """`text` as a JSON string: as it is, or with escapes (a quote may be spelt \\u0022, which
    the re-encoding writes \\", one quote more)."""
    if not escape:
        return '"' + text + '"'
    return json.dumps(text).replace('\\"', "\\u0022", text.count("|"))


@st.composite
def value(draw: st.DrawFn, depth: int = 0) -> str:
    """A JSON value's text; objects may repeat a key (at this depth or below)."""
    kinds = ["int", "float", "str", "lit"] + (["obj", "arr"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return str(draw(st.integers(-(2**70), 2**70)))  # past 64 bits too
    if kind == "float":
        return draw(st.sampled_from(["1.5", "-0.0", "1e3", "2.5E-3", "0.1"]))
    if kind == "str":
        text = draw(st.sampled_from(["a", "b c", "é", "x:y", "{}", "\n", '"', '"|"', '"|"|"']))
        return string(text, draw(st.booleans()))
    if kind == "lit":
        return draw(st.sampled_from(["true", "false", "null"]))
    if kind == "arr":
        return "[" + ",".join(draw(st.lists(value(depth + 1), max_size=3))) + "]"
    return obj(draw, depth + 1)


def obj(draw: st.DrawFn, depth: int) -> str:
    keys = draw(st.lists(st.sampled_from(["k", "id", "method", "x"]), max_size=4))
    ws = draw(WS)
    members = [f"{string(key, False)}{ws}:{ws}{draw(value(depth))}" for key in keys]
    return "{" + ("," + ws).join(members) + "}"


@st.composite
def command_text(draw: st.DrawFn) -> bytes:
    ws = draw(WS)
    id_text = draw(st.sampled_from(["1", "0", "2147483647", "2147483648", "-1", "1.0", '"1"']))
    method = draw(st.sampled_from(METHODS))
    members = [f'"id"{ws}:{ws}{id_text}', f'"method":{string(method, draw(st.booleans()))}']
    if draw(st.booleans()):
        members.append(f'"params":{ws}{obj(draw, 1)}')
    if draw(st.booleans()):
        session = draw(st.sampled_from(["null", '"S"', "1"]))
        members.append(f'"sessionId":{session}')
    if draw(st.booleans()):  # a top-level key written twice, or a field no command has
        members.append(draw(st.sampled_from(['"method":"Browser.close"', '"id":2', '"other":1'])))
    order = draw(st.permutations(members))
    return ("{" + ws + ("," + ws).join(order) + ws + "}").encode()
