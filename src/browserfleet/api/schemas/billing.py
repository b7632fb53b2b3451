"""Account wire models (docs/api.md, "Billing account")."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from browserfleet.api.schemas.browsers import ResponseModel
from browserfleet.billing.account import Account
from browserfleet.billing.pricing import micros_to_usd

PLAN_NAME = "self-hosted"


class PlanInfo(ResponseModel):
    plan_name: str
    subscription_status: str | None
    subscription_id: str | None
    subscription_current_period_end: str | None
    subscription_canceled_at: str | None


class AccountView(ResponseModel):
    name: str | None = None
    total_credits_balance_usd: float
    monthly_credits_balance_usd: float
    additional_credits_balance_usd: float
    rate_limit: int = Field(description="Legacy alias for the concurrent browser session limit")
    concurrent_session_limit: int
    active_session_count: int
    plan_info: PlanInfo
    project_id: UUID
    is_free_tier: bool = False
    api_key_id: UUID | None = None
    tracing_disabled: bool = False

    @classmethod
    def from_account(cls, account: Account, api_key_id: UUID) -> AccountView:
        # Unlimited credits show as 0.0: the SDK needs a number, and nothing is owed.
        balance = float(micros_to_usd(account.balance_micros or 0))
        return cls(
            name=account.project.name,
            total_credits_balance_usd=balance,
            monthly_credits_balance_usd=0.0,
            additional_credits_balance_usd=balance,
            rate_limit=account.concurrent_limit,
            concurrent_session_limit=account.concurrent_limit,
            active_session_count=account.active_sessions,
            plan_info=PlanInfo(
                plan_name=PLAN_NAME,
                subscription_status=None,
                subscription_id=None,
                subscription_current_period_end=None,
                subscription_canceled_at=None,
            ),
            project_id=account.project.id,
            api_key_id=api_key_id,
        )
