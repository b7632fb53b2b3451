"""`GET /files/{key}`: a stored recording or download, through a signed link (media.links).

No API key: the link is the credential, for exactly one file until it expires; a tampered,
foreign or expired link is 403. Served with range requests (206, `Content-Range`,
`Accept-Ranges: bytes`) so a `<video>` can seek, `nosniff`, and a type a browser never executes
(storage.serving); downloads as `Content-Disposition: attachment`. With the S3 store, links are
the store's own presigned URLs and this route serves nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from browserfleet.api.deps import Services
from browserfleet.media.links import Disposition
from browserfleet.storage.errors import StorageError

router = APIRouter(include_in_schema=False)

FORBIDDEN = {"detail": "This link is invalid or has expired"}


@router.get("/files/{key:path}")
async def signed_file(
    key: str,
    svc: Services,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    disposition: Annotated[Disposition, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> Response:
    found = None
    if svc.media is not None:
        try:
            found = await svc.media.open_signed(
                key, expires=expires, disposition=disposition, signature=signature
            )
        except StorageError:
            found = None
    if found is None:
        return _forbidden()
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=60",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
    }
    if found.headers.content_disposition is not None:
        headers["Content-Disposition"] = found.headers.content_disposition
    return FileResponse(
        found.path,
        media_type=found.headers.content_type,
        headers=headers,
        content_disposition_type="attachment"
        if disposition is Disposition.ATTACHMENT
        else "inline",
    )


def _forbidden() -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(FORBIDDEN, status_code=403)
