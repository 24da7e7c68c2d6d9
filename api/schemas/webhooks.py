"""Webhook schemas: endpoints (the secret only on creation and rotation) and the deliveries log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from store.webhooks import ALL, EVENT_TYPES


class WebhookCreate(BaseModel):
    """An endpoint to send events to."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://ci.example.com/hooks/trainapi",
                    "events": ["*"],
                    "description": "tell CI when training ends",
                }
            ]
        },
    )

    url: str = Field(..., min_length=1, max_length=2048, description="http or https; public addresses only.")
    events: list[str] = Field(
        ...,
        min_length=1,
        max_length=len(EVENT_TYPES) + 1,
        description='Event types; `"*"` is every type but `job.epoch`, which is sent only when listed.',
        json_schema_extra={"items": {"type": "string", "enum": [ALL, *EVENT_TYPES]}},
    )
    description: str = Field("", max_length=500)

    @field_validator("events")
    @classmethod
    def _known_and_distinct(cls, events: list[str]) -> list[str]:
        for event in events:
            if event != ALL and event not in EVENT_TYPES:
                raise ValueError(f"unknown event type {event!r}; one of {ALL!r}, {', '.join(EVENT_TYPES)}")
        return list(dict.fromkeys(events))


class WebhookPublic(BaseModel):
    """An endpoint as the API shows it: never its secret."""

    id: str = Field(examples=["wh_8c2f0e6a4b1d4f0e9a7b3c5d2e1f0a9b"])
    url: str
    events: list[str]
    description: str
    created_at: str
    secret_rotated_at: str | None = None


class WebhookCreated(WebhookPublic):
    """The new endpoint with its signing secret, shown only in this response."""

    secret: str = Field(description="`whsec_` + base64 key: verify signatures with it. Shown only once.")


class WebhookSecret(BaseModel):
    """A rotated secret, shown only in this response; the previous one still signs for 24 hours."""

    id: str
    secret: str
    secret_rotated_at: str


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class WebhookTestSent(BaseModel):
    webhook_id: str = Field(description="The `webhook-id` the test event is sent with.")
    type: Literal["webhook.test"] = "webhook.test"


class DeliveryAttempt(BaseModel):
    at: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: float


class DeliveryPublic(BaseModel):
    """One event sent (or being sent) to one endpoint."""

    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: str
    last_attempt_at: str | None = None
    delivered_at: str | None = None
    next_attempt_at: str | None = Field(None, description="When a pending delivery is tried again.")
    history: list[DeliveryAttempt] = Field(description="The latest attempts, oldest first.")


class DeliveryList(BaseModel):
    items: list[DeliveryPublic]


def endpoint_view(record: dict[str, Any]) -> WebhookPublic:
    """The public shape of an endpoint record (what ``GET /v1/webhooks/{id}`` returns)."""
    return WebhookPublic(
        id=record["id"],
        url=record["url"],
        events=record["events"],
        description=record.get("description") or "",
        created_at=record["created_at"],
        secret_rotated_at=record.get("secret_rotated_at") or None,
    )
