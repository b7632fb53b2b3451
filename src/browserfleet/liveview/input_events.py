"""Live-view input mapping: DOM pointer, wheel and key events to CDP `Input.dispatch*Event` params.

Pure. The page (static/live.js) gets its tables from `input_map_json()`, inlined by the router,
and mirrors these functions line for line; the e2e test checks that both give the same answers.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntFlag, StrEnum
from typing import Final


class Modifier(IntFlag):
    """CDP's modifier bitmask (Input.dispatchMouseEvent / dispatchKeyEvent `modifiers`)."""

    NONE = 0
    ALT = 1
    CTRL = 2
    META = 4
    SHIFT = 8


def modifiers(*, alt: bool, ctrl: bool, meta: bool, shift: bool) -> int:
    """DOM event flags (altKey, ctrlKey, metaKey, shiftKey) -> CDP modifier bitmask."""
    mask = Modifier.NONE
    if alt:
        mask |= Modifier.ALT
    if ctrl:
        mask |= Modifier.CTRL
    if meta:
        mask |= Modifier.META
    if shift:
        mask |= Modifier.SHIFT
    return int(mask)


class MouseButton(StrEnum):
    """CDP's `MouseButton` names."""

    NONE = "none"
    LEFT = "left"
    MIDDLE = "middle"
    RIGHT = "right"
    BACK = "back"
    FORWARD = "forward"


# Indexed by the DOM's MouseEvent.button (0 main, 1 auxiliary, 2 secondary, 3 back, 4 forward).
DOM_BUTTONS: Final = (
    MouseButton.LEFT,
    MouseButton.MIDDLE,
    MouseButton.RIGHT,
    MouseButton.BACK,
    MouseButton.FORWARD,
)


def mouse_button(dom_button: int) -> MouseButton:
    """DOM MouseEvent.button -> CDP button name; anything unknown is 'none'."""
    if 0 <= dom_button < len(DOM_BUTTONS):
        return DOM_BUTTONS[dom_button]
    return MouseButton.NONE


# The DOM's MouseEvent.buttons bits, in the order a move reports the held button.
BUTTON_BITS: Final = (
    (1, MouseButton.LEFT),
    (2, MouseButton.RIGHT),
    (4, MouseButton.MIDDLE),
    (8, MouseButton.BACK),
    (16, MouseButton.FORWARD),
)


def held_button(dom_buttons: int) -> MouseButton:
    """DOM MouseEvent.buttons bitmask -> the one button CDP reports for a move (a drag)."""
    return next((button for bit, button in BUTTON_BITS if dom_buttons & bit), MouseButton.NONE)


MOUSE_EVENT_TYPES: Final[Mapping[str, str]] = {
    "mousedown": "mousePressed",
    "mouseup": "mouseReleased",
    "mousemove": "mouseMoved",
}
MOUSE_MOVED: Final = "mouseMoved"


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Size:
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class FrameMetadata:
    """The parts of `Page.screencastFrame`'s metadata that place a frame on the page."""

    device_width: float
    device_height: float
    offset_top: float = 0.0
    page_scale_factor: float = 1.0


def frame_rect(canvas: Size, frame: FrameMetadata) -> Rect:
    """Where a frame is drawn on a canvas of `canvas` CSS pixels: scaled to fit, centred."""
    if frame.device_width <= 0 or frame.device_height <= 0:
        return Rect(0.0, 0.0, 0.0, 0.0)
    fit = min(canvas.width / frame.device_width, canvas.height / frame.device_height)
    width = frame.device_width * fit
    height = frame.device_height * fit
    return Rect((canvas.width - width) / 2, (canvas.height - height) / 2, width, height)


def canvas_to_page(
    point: Point, canvas: Size, frame: FrameMetadata, *, clamp: bool = False
) -> Point | None:
    """A point on the canvas (CSS px from its top-left) -> CSS px in the page's viewport.

    None when the point is off the drawn frame, unless `clamp` pins it to the frame's edge
    (a drag that leaves the canvas must still release inside the page).
    """
    rect = frame_rect(canvas, frame)
    if rect.width <= 0 or rect.height <= 0:
        return None
    x = point.x - rect.x
    y = point.y - rect.y
    if clamp:
        x = min(max(x, 0.0), rect.width)
        y = min(max(y, 0.0), rect.height)
    elif not (0 <= x <= rect.width and 0 <= y <= rect.height):
        return None
    dip_per_px = frame.device_width / rect.width
    # A frame shows the visual viewport in DIP; Chrome multiplies input coordinates by the
    # page (pinch-zoom) scale, so divide it out to land where the user pointed.
    scale = frame.page_scale_factor if frame.page_scale_factor > 0 else 1.0
    return Point(x * dip_per_px / scale, (y * dip_per_px - frame.offset_top) / scale)


@dataclass(frozen=True, slots=True)
class MouseEvent:
    """One DOM MouseEvent, as the page sees it (`detail` is the DOM's click count)."""

    type: str  # 'mousedown' | 'mouseup' | 'mousemove'
    button: int = 0
    buttons: int = 0
    detail: int = 0
    modifiers: int = 0


def mouse_event_params(event: MouseEvent, at: Point) -> dict[str, object]:
    """DOM mouse event at page point `at` -> Input.dispatchMouseEvent params.

    A press or release names its button and click count (2 makes a dblclick); a move names
    the held button, so a drag selects text, and has no click count.
    """
    kind = MOUSE_EVENT_TYPES[event.type]
    moved = kind == MOUSE_MOVED
    return {
        "type": kind,
        "x": at.x,
        "y": at.y,
        "button": str(held_button(event.buttons) if moved else mouse_button(event.button)),
        "buttons": event.buttons,
        "clickCount": 0 if moved else max(event.detail, 1),
        "modifiers": event.modifiers,
    }


# DOM WheelEvent.deltaMode values and how many CSS px one unit of each is worth.
DOM_DELTA_PIXEL: Final = 0
DOM_DELTA_LINE: Final = 1
DOM_DELTA_PAGE: Final = 2
LINE_HEIGHT_PX: Final = 40


def wheel_delta(delta: float, delta_mode: int, page_height: float) -> float:
    """A DOM wheel delta in its deltaMode's unit -> CSS px for CDP's deltaX/deltaY."""
    if delta_mode == DOM_DELTA_LINE:
        return delta * LINE_HEIGHT_PX
    if delta_mode == DOM_DELTA_PAGE:
        return delta * page_height
    return delta


def _range(prefix: str, chars: str, first: int) -> dict[str, int]:
    return {f"{prefix}{char}": first + i for i, char in enumerate(chars)}


# Windows virtual-key codes by DOM KeyboardEvent.code (the physical key, layout independent).
VIRTUAL_KEY_CODES_BY_CODE: Final[Mapping[str, int]] = {
    **_range("Key", string.ascii_uppercase, 65),
    **_range("Digit", string.digits, 48),
    **_range("Numpad", string.digits, 96),
    **{f"F{n}": 111 + n for n in range(1, 25)},
    "Backspace": 8, "Tab": 9, "Enter": 13, "NumpadEnter": 13,
    "ShiftLeft": 16, "ShiftRight": 16, "ControlLeft": 17, "ControlRight": 17,
    "AltLeft": 18, "AltRight": 18, "Pause": 19, "CapsLock": 20, "Escape": 27, "Space": 32,
    "PageUp": 33, "PageDown": 34, "End": 35, "Home": 36,
    "ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40,
    "PrintScreen": 44, "Insert": 45, "Delete": 46,
    "MetaLeft": 91, "MetaRight": 92, "ContextMenu": 93,
    "NumpadMultiply": 106, "NumpadAdd": 107, "NumpadSubtract": 109, "NumpadDecimal": 110,
    "NumpadDivide": 111, "NumLock": 144, "ScrollLock": 145,
    "Semicolon": 186, "Equal": 187, "Comma": 188, "Minus": 189, "Period": 190, "Slash": 191,
    "Backquote": 192, "BracketLeft": 219, "Backslash": 220, "BracketRight": 221, "Quote": 222,
}  # fmt: skip

# Fallback by DOM KeyboardEvent.key when `code` is empty or unknown (virtual keyboards, IMEs).
VIRTUAL_KEY_CODES_BY_KEY: Final[Mapping[str, int]] = {
    **_range("", string.ascii_uppercase, 65),
    **_range("", string.ascii_lowercase, 65),
    **_range("", string.digits, 48),
    **{f"F{n}": 111 + n for n in range(1, 25)},
    "Backspace": 8, "Tab": 9, "Enter": 13, "Shift": 16, "Control": 17, "Alt": 18,
    "Pause": 19, "CapsLock": 20, "Escape": 27, " ": 32,
    "PageUp": 33, "PageDown": 34, "End": 35, "Home": 36,
    "ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40,
    "PrintScreen": 44, "Insert": 45, "Delete": 46, "Meta": 91, "ContextMenu": 93,
    "NumLock": 144, "ScrollLock": 145,
    ";": 186, "=": 187, ",": 188, "-": 189, ".": 190, "/": 191, "`": 192,
    "[": 219, "\\": 220, "]": 221, "'": 222,
}  # fmt: skip


def virtual_key_code(key: str, code: str) -> int:
    """DOM key and code -> windowsVirtualKeyCode; 0 when neither is known."""
    return VIRTUAL_KEY_CODES_BY_CODE.get(code) or VIRTUAL_KEY_CODES_BY_KEY.get(key, 0)


# Keys whose DOM `key` is a name but which still type text (what a real keyboard sends).
NAMED_KEY_TEXT: Final[Mapping[str, str]] = {"Enter": "\r"}


def key_text(key: str, modifier_mask: int) -> str:
    """The text a key press types, or '' for a shortcut or a non-printing key.

    Ctrl or Meta make a shortcut (Ctrl+A selects, it does not type 'a'), except Ctrl+Alt,
    which is how AltGr reaches the page on Windows layouts ('@' on a German keyboard).
    """
    chord = modifier_mask & (Modifier.CTRL | Modifier.META)
    altgr = modifier_mask & Modifier.CTRL and modifier_mask & Modifier.ALT
    if chord and not altgr:
        return ""
    if key in NAMED_KEY_TEXT:
        return NAMED_KEY_TEXT[key]
    return key if len(key) == 1 else ""


KEY_EVENT_TYPES: Final[Mapping[str, str]] = {"keydown": "keyDown", "keyup": "keyUp"}
RAW_KEY_DOWN: Final = "rawKeyDown"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One DOM KeyboardEvent, as the page sees it."""

    type: str  # 'keydown' | 'keyup'
    key: str
    code: str
    modifiers: int = 0
    location: int = 0
    repeat: bool = False


def key_event_params(event: KeyEvent) -> dict[str, object]:
    """DOM keydown/keyup -> Input.dispatchKeyEvent params.

    A keydown that types text is a CDP 'keyDown' carrying that text (Chrome then fires the
    keypress/input itself, so no separate 'char' event is sent); one that does not is a
    'rawKeyDown', so Ctrl+A or an arrow never inserts anything.
    """
    text = key_text(event.key, event.modifiers) if event.type == "keydown" else ""
    kind = KEY_EVENT_TYPES[event.type]
    if event.type == "keydown" and not text:
        kind = RAW_KEY_DOWN
    params: dict[str, object] = {
        "type": kind,
        "key": event.key,
        "code": event.code,
        "windowsVirtualKeyCode": virtual_key_code(event.key, event.code),
        "modifiers": event.modifiers,
        "location": event.location,
        "autoRepeat": event.repeat,
    }
    if text:
        params["text"] = text
        params["unmodifiedText"] = text
    return params


def input_map() -> dict[str, object]:
    """Every table the page's JavaScript needs, JSON-ready."""
    return {
        "modifiers": {
            "alt": int(Modifier.ALT),
            "ctrl": int(Modifier.CTRL),
            "meta": int(Modifier.META),
            "shift": int(Modifier.SHIFT),
        },
        "buttons": [str(button) for button in DOM_BUTTONS],
        "buttonBits": [[bit, str(button)] for bit, button in BUTTON_BITS],
        "mouseTypes": dict(MOUSE_EVENT_TYPES),
        "mouseMoved": MOUSE_MOVED,
        "keyTypes": dict(KEY_EVENT_TYPES),
        "rawKeyDown": RAW_KEY_DOWN,
        "lineHeight": LINE_HEIGHT_PX,
        "deltaModes": {"pixel": DOM_DELTA_PIXEL, "line": DOM_DELTA_LINE, "page": DOM_DELTA_PAGE},
        "keyCodesByCode": dict(VIRTUAL_KEY_CODES_BY_CODE),
        "keyCodesByKey": dict(VIRTUAL_KEY_CODES_BY_KEY),
        "namedKeyText": dict(NAMED_KEY_TEXT),
    }


def input_map_json() -> str:
    """`input_map()` as JSON that is safe inside an HTML <script type="application/json">."""
    return json.dumps(input_map(), separators=(",", ":"), sort_keys=True).replace("<", "\\u003c")
