"""The 248 proxy country codes the SDK knows (contract §8.2)."""

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_CODES = (
    "ad ae af ag ai al am an ao aq ar as at au aw az ba bb bd be bf bg bh bi bj bl bm bn bo bq br "
    "bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm co cr cs cu cv cw cx cy cz de dj dk dm do dz "
    "ec ee eg eh er es et fi fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy "
    "hk hm hn hr ht hu id ie il im in iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la "
    "lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx "
    "my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re "
    "ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf tg th tj "
    "tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va vc ve vg vi vn vu wf ws xk ye yt za zm zw"
).split()

COUNTRY_CODES = frozenset(_CODES)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _known(value: str) -> str:
    if value not in COUNTRY_CODES:
        raise ValueError(f"unknown country code {value!r} (use lowercase ISO codes; 'uk', not 'gb')")
    return value


# Case-insensitive on input ("US" is "us"); the schema shows the SDK's enum.
ProxyCountryCode = Annotated[
    str,
    BeforeValidator(_lower),
    AfterValidator(_known),
    WithJsonSchema({"type": "string", "enum": list(_CODES), "title": "ProxyCountryCode"}),
]
