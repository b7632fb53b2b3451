"""`/billing/account`: the key's project, its limits and live usage (docs/api.md)."""

from __future__ import annotations

from fastapi import APIRouter

from browserfleet.api.deps import Caller, Services
from browserfleet.api.schemas.billing import AccountView
from browserfleet.api.schemas.browsers import ErrorBody

router = APIRouter(prefix="/billing", tags=["Billing"])


@router.get(
    "/account",
    response_model=AccountView,
    responses={
        401: {"description": "Missing or invalid API key", "model": ErrorBody},
        404: {"description": "Account not found", "model": ErrorBody},
    },
    summary="Get Account Billing",
)
async def get_account_billing(caller: Caller, svc: Services) -> AccountView:
    account = await svc.accounts.account(caller)
    return AccountView.from_account(account, caller.api_key_id)
