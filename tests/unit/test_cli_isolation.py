"""The command line's isolation switch reaches the settings."""

from __future__ import annotations

import pytest

from browserfleet.cli.main import build_parser, settings_from
from browserfleet.settings import Isolation


@pytest.mark.parametrize("command", ["serve", "doctor"])
def test_isolation_none_on_the_command_line_turns_the_sandbox_off(command: str) -> None:
    args = build_parser().parse_args([command, "--isolation", "none"])
    assert settings_from(args).sandbox.isolation is Isolation.NONE


def test_the_sandbox_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROWSERFLEET_SANDBOX__ISOLATION", raising=False)
    args = build_parser().parse_args(["serve"])
    assert settings_from(args).sandbox.isolation is Isolation.SANDBOX


def test_an_unknown_isolation_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--isolation", "partial"])
    assert "invalid choice: 'partial'" in capsys.readouterr().err


def test_leftovers_takes_clean() -> None:
    args = build_parser().parse_args(["leftovers", "--clean"])
    assert args.clean is True
