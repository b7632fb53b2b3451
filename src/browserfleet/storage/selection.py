"""Which files of a directory go into an archive: include and exclude globs, pure.

Patterns follow .gitignore's main rules: a pattern without '/' matches a name at any depth
('Singleton*', '*.tmp'); one with '/' is anchored at the top ('Default/Cache'); '*' and '?' stay
within one name, '[a-z]' is a class, and '**' spans any number of folders ('**/Cache'). An
excluded folder is skipped whole. With include patterns, only files matching one of them (or
lying in a folder that does) are kept; exclusion wins over inclusion.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

SEP = "/"


@dataclass(frozen=True, slots=True)
class PathFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def excluded(self, path: str) -> bool:
        """`path` (relative, '/'-separated, a file's or a folder's) matches an exclude pattern."""
        return any(_compile(pattern).match(path) for pattern in self.exclude)

    def keeps_file(self, path: str) -> bool:
        """Whether a file at `path` goes in (its folders were already found not excluded)."""
        if self.excluded(path):
            return False
        if not self.include:
            return True
        return any(_compile(p).match(sub) for p in self.include for sub in _self_and_parents(path))


def _self_and_parents(path: str) -> list[str]:
    parts = path.split(SEP)
    return [SEP.join(parts[:end]) for end in range(len(parts), 0, -1)]


@functools.cache
def _compile(pattern: str) -> re.Pattern[str]:
    body = pattern.strip(SEP)
    if not body:
        raise ValueError(f"empty pattern {pattern!r}")
    anchored = SEP in body
    segments = body.split(SEP)
    regex = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else f"(?:[^{SEP}]+{SEP})*"
        else:
            regex += _segment(segment) + ("" if last else SEP)
    if not anchored:
        regex = f"(?:.*{SEP})?" + regex
    return re.compile(regex + r"\Z", re.DOTALL)


def _segment(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        i += 1
        if ch == "*":
            out.append(f"[^{SEP}]*")
        elif ch == "?":
            out.append(f"[^{SEP}]")
        elif ch == "[" and (end := glob.find("]", i + 1)) != -1:
            inner = glob[i:end]
            negate = inner[:1] in ("!", "^")
            inner = inner[1:] if negate else inner
            inner = inner.replace("\\", "\\\\")
            # A class never matches the separator, negated or not.
            out.append(f"(?!{SEP})[{'^' if negate else ''}{inner}]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    return "".join(out)
