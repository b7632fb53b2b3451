"""Live-view input mapping: canvas points, buttons, modifiers, wheel and keys to CDP params."""

from __future__ import annotations

import itertools
import json
import string

import pytest

from browserfleet.liveview.input_events import (
    DOM_DELTA_LINE,
    DOM_DELTA_PAGE,
    DOM_DELTA_PIXEL,
    LINE_HEIGHT_PX,
    VIRTUAL_KEY_CODES_BY_CODE,
    VIRTUAL_KEY_CODES_BY_KEY,
    FrameMetadata,
    KeyEvent,
    Modifier,
    MouseButton,
    MouseEvent,
    Point,
    Rect,
    Size,
    canvas_to_page,
    frame_rect,
    held_button,
    input_map,
    input_map_json,
    key_event_params,
    key_text,
    modifiers,
    mouse_button,
    mouse_event_params,
    virtual_key_code,
    wheel_delta,
)

HD = FrameMetadata(device_width=1280, device_height=720)

# --- modifiers ------------------------------------------------------------------------------


def test_modifier_bits_are_cdps() -> None:
    assert (Modifier.ALT, Modifier.CTRL, Modifier.META, Modifier.SHIFT) == (1, 2, 4, 8)


@pytest.mark.parametrize("flags", list(itertools.product((False, True), repeat=4)))
def test_every_combination_of_dom_flags_sets_exactly_its_bits(
    flags: tuple[bool, bool, bool, bool],
) -> None:
    alt, ctrl, meta, shift = flags
    expected = alt * 1 + ctrl * 2 + meta * 4 + shift * 8
    assert modifiers(alt=alt, ctrl=ctrl, meta=meta, shift=shift) == expected


# --- buttons --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dom_button", "name"),
    [(0, "left"), (1, "middle"), (2, "right"), (3, "back"), (4, "forward")],
)
def test_dom_button_index_maps_to_cdp_name(dom_button: int, name: str) -> None:
    assert mouse_button(dom_button) == name


@pytest.mark.parametrize("dom_button", [-1, 5, 99])
def test_unknown_dom_button_is_none(dom_button: int) -> None:
    assert mouse_button(dom_button) is MouseButton.NONE


@pytest.mark.parametrize(
    ("buttons", "held"),
    [(0, "none"), (1, "left"), (2, "right"), (4, "middle"), (8, "back"), (16, "forward"),
     (3, "left"), (6, "right"), (12, "middle"), (24, "back"), (32, "none")],
)  # fmt: skip
def test_a_move_reports_the_first_held_button(buttons: int, held: str) -> None:
    assert held_button(buttons) == held


def test_press_names_its_button_and_click_count() -> None:
    event = MouseEvent("mousedown", button=2, buttons=2, detail=1, modifiers=8)
    assert mouse_event_params(event, Point(10, 20)) == {
        "type": "mousePressed", "x": 10, "y": 20, "button": "right", "buttons": 2,
        "clickCount": 1, "modifiers": 8,
    }  # fmt: skip


def test_second_press_of_a_double_click_has_click_count_two() -> None:
    event = MouseEvent("mousedown", button=0, buttons=1, detail=2)
    assert mouse_event_params(event, Point(1, 1))["clickCount"] == 2


def test_release_after_the_buttons_are_up_still_names_its_button() -> None:
    params = mouse_event_params(MouseEvent("mouseup", button=0, buttons=0, detail=1), Point(1, 1))
    assert (params["type"], params["button"], params["buttons"]) == ("mouseReleased", "left", 0)


def test_click_count_is_at_least_one_for_presses_and_releases() -> None:
    for kind in ("mousedown", "mouseup"):
        assert mouse_event_params(MouseEvent(kind, detail=0), Point(0, 0))["clickCount"] == 1


def test_a_drag_move_names_the_held_button_and_no_click_count() -> None:
    params = mouse_event_params(MouseEvent("mousemove", button=0, buttons=1), Point(3, 4))
    assert (params["type"], params["button"], params["clickCount"]) == ("mouseMoved", "left", 0)


def test_a_hover_move_has_no_button() -> None:
    params = mouse_event_params(MouseEvent("mousemove", button=0, buttons=0), Point(3, 4))
    assert params["button"] == "none"


def test_unknown_mouse_event_type_is_rejected() -> None:
    with pytest.raises(KeyError):
        mouse_event_params(MouseEvent("click"), Point(0, 0))


# --- geometry -------------------------------------------------------------------------------


def test_frame_fills_a_canvas_of_the_same_aspect() -> None:
    assert frame_rect(Size(640, 360), HD) == Rect(0, 0, 640, 360)


def test_frame_is_letterboxed_in_a_taller_canvas() -> None:
    assert frame_rect(Size(640, 560), HD) == Rect(0, 100, 640, 360)


def test_frame_is_pillarboxed_in_a_wider_canvas() -> None:
    assert frame_rect(Size(840, 360), HD) == Rect(100, 0, 640, 360)


def test_frame_scales_up_to_a_larger_canvas() -> None:
    assert frame_rect(Size(2560, 1440), HD) == Rect(0, 0, 2560, 1440)


def test_frame_without_size_draws_nowhere() -> None:
    assert frame_rect(Size(640, 360), FrameMetadata(0, 720)) == Rect(0, 0, 0, 0)
    assert canvas_to_page(Point(1, 1), Size(640, 360), FrameMetadata(1280, 0)) is None


@pytest.mark.parametrize(
    ("point", "page"),
    [
        ((0, 0), (0, 0)),
        ((320, 180), (640, 360)),
        ((640, 360), (1280, 720)),
        ((1.5, 2.25), (3, 4.5)),
    ],
)
def test_canvas_point_scales_to_page_pixels(
    point: tuple[float, float], page: tuple[float, float]
) -> None:
    assert canvas_to_page(Point(*point), Size(640, 360), HD) == Point(*page)


def test_letterbox_offset_is_subtracted() -> None:
    assert canvas_to_page(Point(320, 280), Size(640, 560), HD) == Point(640, 360)
    assert canvas_to_page(Point(200, 180), Size(840, 360), HD) == Point(200, 360)


@pytest.mark.parametrize("point", [(-1, 10), (10, -1), (641, 10), (10, 361), (-0.01, -0.01)])
def test_point_off_the_frame_maps_to_nothing(point: tuple[float, float]) -> None:
    assert canvas_to_page(Point(*point), Size(640, 360), HD) is None


def test_letterbox_band_maps_to_nothing() -> None:
    # A 640x460 canvas shows the 640x360 frame between y=50 and y=410.
    assert canvas_to_page(Point(10, 49), Size(640, 460), HD) is None
    assert canvas_to_page(Point(10, 411), Size(640, 460), HD) is None
    assert canvas_to_page(Point(10, 50), Size(640, 460), HD) == Point(20, 0)


@pytest.mark.parametrize(
    ("point", "page"),
    [
        ((-50, -50), (0, 0)),
        ((700, 400), (1280, 720)),
        ((-5, 180), (0, 360)),
        ((320, 999), (640, 720)),
    ],
)
def test_clamp_pins_a_point_to_the_frame_edge(
    point: tuple[float, float], page: tuple[float, float]
) -> None:
    assert canvas_to_page(Point(*point), Size(640, 360), HD, clamp=True) == Point(*page)


def test_page_scale_factor_divides_out() -> None:
    zoomed = FrameMetadata(1280, 720, page_scale_factor=2)
    assert canvas_to_page(Point(320, 180), Size(640, 360), zoomed) == Point(320, 180)


def test_non_positive_page_scale_factor_is_taken_as_one() -> None:
    broken = FrameMetadata(1280, 720, page_scale_factor=0)
    assert canvas_to_page(Point(320, 180), Size(640, 360), broken) == Point(640, 360)


def test_offset_top_is_subtracted_in_dip_before_scaling() -> None:
    mobile = FrameMetadata(400, 800, offset_top=56, page_scale_factor=2)
    assert canvas_to_page(Point(100, 200), Size(200, 400), mobile) == Point(100, 172)


# --- wheel ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "mode", "pixels"),
    [(120, DOM_DELTA_PIXEL, 120), (-3, DOM_DELTA_LINE, -3 * LINE_HEIGHT_PX),
     (1, DOM_DELTA_PAGE, 700), (0.5, DOM_DELTA_PAGE, 350), (5, 9, 5)],
)  # fmt: skip
def test_wheel_delta_is_in_css_pixels(delta: float, mode: int, pixels: float) -> None:
    assert wheel_delta(delta, mode, page_height=700) == pixels


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("letter", string.ascii_uppercase)
def test_letter_keys_have_their_ascii_code(letter: str) -> None:
    assert virtual_key_code(letter.lower(), f"Key{letter}") == ord(letter)
    assert virtual_key_code(letter, f"Key{letter}") == ord(letter)
    assert virtual_key_code(letter.lower(), "") == ord(letter)


@pytest.mark.parametrize("digit", string.digits)
def test_digit_keys_have_their_ascii_code_and_numpad_its_own(digit: str) -> None:
    assert virtual_key_code(digit, f"Digit{digit}") == ord(digit)
    assert virtual_key_code(digit, f"Numpad{digit}") == 96 + int(digit)
    assert virtual_key_code(digit, "") == ord(digit)


@pytest.mark.parametrize(
    ("key", "code", "vk"),
    [("Backspace", "Backspace", 8), ("Tab", "Tab", 9), ("Enter", "Enter", 13),
     ("Enter", "NumpadEnter", 13), ("Shift", "ShiftLeft", 16), ("Control", "ControlRight", 17),
     ("Alt", "AltLeft", 18), ("Escape", "Escape", 27), (" ", "Space", 32), ("PageUp", "PageUp", 33),
     ("PageDown", "PageDown", 34), ("End", "End", 35), ("Home", "Home", 36),
     ("ArrowLeft", "ArrowLeft", 37), ("ArrowUp", "ArrowUp", 38), ("ArrowRight", "ArrowRight", 39),
     ("ArrowDown", "ArrowDown", 40), ("Insert", "Insert", 45), ("Delete", "Delete", 46),
     ("Meta", "MetaLeft", 91), ("F1", "F1", 112), ("F12", "F12", 123), ("F24", "F24", 135),
     (";", "Semicolon", 186), ("=", "Equal", 187), (",", "Comma", 188), ("-", "Minus", 189),
     (".", "Period", 190), ("/", "Slash", 191), ("`", "Backquote", 192), ("[", "BracketLeft", 219),
     ("\\", "Backslash", 220), ("]", "BracketRight", 221), ("'", "Quote", 222),
     ("*", "NumpadMultiply", 106), ("+", "NumpadAdd", 107), ("-", "NumpadSubtract", 109)],
)  # fmt: skip
def test_common_keys_have_their_windows_virtual_key_code(key: str, code: str, vk: int) -> None:
    assert virtual_key_code(key, code) == vk


def test_code_wins_over_key_so_shifted_symbols_keep_their_physical_key() -> None:
    assert virtual_key_code("!", "Digit1") == ord("1")
    assert virtual_key_code("q", "KeyA") == ord("A")  # AZERTY: the A key types q


def test_named_keys_without_a_code_fall_back_to_the_key() -> None:
    assert virtual_key_code("ArrowDown", "") == 40
    assert virtual_key_code("Enter", "Unknown") == 13


def test_unknown_keys_have_code_zero() -> None:
    assert virtual_key_code("é", "") == 0
    assert virtual_key_code("Unidentified", "") == 0


def test_key_tables_agree_where_both_name_a_key() -> None:
    for code, vk in VIRTUAL_KEY_CODES_BY_CODE.items():
        if code.startswith("Key"):
            assert VIRTUAL_KEY_CODES_BY_KEY[code[3:]] == vk
        elif code.startswith("Digit") or (code.startswith("F") and code[1:].isdigit()):
            assert VIRTUAL_KEY_CODES_BY_KEY[code.removeprefix("Digit")] == vk


@pytest.mark.parametrize(
    ("key", "mask", "text"),
    [("a", 0, "a"), ("A", Modifier.SHIFT, "A"), ("é", 0, "é"), (" ", 0, " "), ("😀", 0, "😀"),
     ("Enter", 0, "\r"), ("Enter", Modifier.SHIFT, "\r"), ("Tab", 0, ""), ("ArrowLeft", 0, ""),
     ("a", Modifier.CTRL, ""), ("a", Modifier.META, ""), ("a", Modifier.META | Modifier.SHIFT, ""),
     ("Enter", Modifier.CTRL, ""), ("å", Modifier.ALT, "å"),
     ("@", Modifier.CTRL | Modifier.ALT, "@"), ("F5", 0, ""), ("Unidentified", 0, "")],
)  # fmt: skip
def test_key_text(key: str, mask: int, text: str) -> None:
    assert key_text(key, mask) == text


def test_printable_keydown_is_a_keydown_with_text() -> None:
    params = key_event_params(KeyEvent("keydown", "A", "KeyA", modifiers=8))
    assert params == {
        "type": "keyDown", "key": "A", "code": "KeyA", "windowsVirtualKeyCode": 65,
        "modifiers": 8, "location": 0, "autoRepeat": False, "text": "A", "unmodifiedText": "A",
    }  # fmt: skip


def test_non_printing_keydown_is_a_raw_keydown_without_text() -> None:
    params = key_event_params(KeyEvent("keydown", "ArrowLeft", "ArrowLeft", location=0))
    assert params["type"] == "rawKeyDown"
    assert "text" not in params


def test_shortcut_keydown_types_nothing() -> None:
    params = key_event_params(KeyEvent("keydown", "a", "KeyA", modifiers=int(Modifier.CTRL)))
    assert (params["type"], params["windowsVirtualKeyCode"], params["modifiers"]) == (
        "rawKeyDown", 65, 2,
    )  # fmt: skip
    assert "text" not in params


def test_enter_keydown_sends_a_carriage_return() -> None:
    assert key_event_params(KeyEvent("keydown", "Enter", "Enter"))["text"] == "\r"


def test_keyup_never_carries_text() -> None:
    params = key_event_params(KeyEvent("keyup", "a", "KeyA"))
    assert params["type"] == "keyUp"
    assert "text" not in params


def test_location_and_repeat_pass_through() -> None:
    params = key_event_params(KeyEvent("keydown", "1", "Numpad1", location=3, repeat=True))
    assert (params["location"], params["autoRepeat"], params["windowsVirtualKeyCode"]) == (
        3, True, 97,
    )  # fmt: skip


def test_unknown_key_event_type_is_rejected() -> None:
    with pytest.raises(KeyError):
        key_event_params(KeyEvent("keypress", "a", "KeyA"))


# --- the tables the page gets ---------------------------------------------------------------


def test_input_map_carries_every_table_the_page_uses() -> None:
    tables = input_map()
    assert tables["modifiers"] == {"alt": 1, "ctrl": 2, "meta": 4, "shift": 8}
    assert tables["buttons"] == ["left", "middle", "right", "back", "forward"]
    assert tables["buttonBits"] == [
        [1, "left"], [2, "right"], [4, "middle"], [8, "back"], [16, "forward"],
    ]  # fmt: skip
    assert tables["mouseTypes"] == {
        "mousedown": "mousePressed", "mouseup": "mouseReleased", "mousemove": "mouseMoved",
    }  # fmt: skip
    assert tables["mouseMoved"] == "mouseMoved"
    assert tables["keyTypes"] == {"keydown": "keyDown", "keyup": "keyUp"}
    assert tables["rawKeyDown"] == "rawKeyDown"
    assert tables["lineHeight"] == LINE_HEIGHT_PX
    assert tables["deltaModes"] == {"pixel": 0, "line": 1, "page": 2}
    assert tables["keyCodesByCode"] == dict(VIRTUAL_KEY_CODES_BY_CODE)
    assert tables["keyCodesByKey"] == dict(VIRTUAL_KEY_CODES_BY_KEY)
    assert tables["namedKeyText"] == {"Enter": "\r"}


def test_input_map_json_round_trips_and_cannot_close_its_script_tag() -> None:
    encoded = input_map_json()
    assert "<" not in encoded
    assert json.loads(encoded) == input_map()
