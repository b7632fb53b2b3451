def plain_method(frame: bytes, limit: int, /) -> str | None:
    """The method of the plain CDP command that `frame` (one whole client text frame, its payload
    at most `limit` and 65535 bytes) carries; None when it is not one (the general way decides)."""
