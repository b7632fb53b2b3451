"""What a `doctor` check reports: its status, what was found, and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    """One checked fact: its status, what was found, and what to do about it."""

    status: Status
    check: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.value:<4} {self.check}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text
