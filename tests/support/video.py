"""What ffprobe (Debian's ffmpeg) reads of a video: its format and streams."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def ffprobe(data: bytes) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", "-"],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    )
    probed: dict[str, Any] = json.loads(done.stdout)
    return probed
