"""`POST /browsers/{id}/uploads`: files for the browser's file inputs (multipart, streamed).

The answer names each file's path as the browser sees it: pass it to Playwright's
`set_input_files`, Puppeteer's `uploadFile` or CDP's `DOM.setFileInputFiles`. The CDP gateway
lets file inputs take files from this upload area only. The body cap is the HTTP edge's upload
cap, applied before authentication (api.http_protocol).
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from fastapi import APIRouter, Request, status
from pydantic import Field
from starlette.requests import ClientDisconnect

from browserfleet.api.deps import Caller, Services
from browserfleet.api.multipart import MAX_FILES, SavedFile, save_files
from browserfleet.api.schemas.browsers import NOT_ON_CLUSTER, ErrorBody, ResponseModel
from browserfleet.errors import InvalidUpload
from browserfleet.ids import SessionId

router = APIRouter(prefix="/browsers", tags=["Browsers"])

_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["file"],
                }
            }
        },
    }
}


class UploadedFile(ResponseModel):
    name: str = Field(description="The file's name in the upload area (made safe and unique).")
    path: str = Field(description="Its path as the browser sees it: give this to a file input.")
    size: int = Field(description="Bytes stored.")


class UploadedFilesView(ResponseModel):
    files: list[UploadedFile]


@router.post(
    "/{session_id}/uploads",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadedFilesView,
    responses={
        400: {"description": "Not multipart/form-data, or no file part", "model": ErrorBody},
        401: {"description": "Missing or invalid API key", "model": ErrorBody},
        404: {"description": "Session not found", "model": ErrorBody},
        409: {"description": "The session is not active on this server", "model": ErrorBody},
        413: {"description": "The body is larger than the upload cap", "model": ErrorBody},
        501: NOT_ON_CLUSTER,
    },
    openapi_extra=_MULTIPART_BODY,
    summary="Upload Files For A Browser Session",
    description=f"Up to {MAX_FILES} file parts per request; other form fields are ignored.",
)
async def upload_files(
    session_id: UUID, request: Request, caller: Caller, svc: Services
) -> UploadedFilesView:

    async def receive(directory: Path) -> list[SavedFile]:
        try:
            return await save_files(
                request.headers.get("content-type"), request.stream(), directory
            )
        except ClientDisconnect:
            raise InvalidUpload("the upload broke off") from None

    area, stored = await svc.sessions.upload(caller, SessionId(session_id), receive)
    return UploadedFilesView(
        files=[UploadedFile(name=name, path=str(area / name), size=size) for name, size in stored]
    )
