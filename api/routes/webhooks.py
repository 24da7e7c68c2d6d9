"""Webhook endpoints: register, list, inspect, delete, rotate the secret, send a test, read the deliveries log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import StateDep, TenantDep
from api.errors import invalid
from api.schemas.problems import responses
from api.schemas.webhooks import (
    DeliveryList,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
    WebhookSecret,
    WebhookTestSent,
    endpoint_view,
)
from api.webhooks import targets

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
DELIVERY_STATUSES = ("pending", "delivered", "failed")


@router.post(
    "",
    status_code=201,
    summary="Register an endpoint (the response shows its signing secret, once)",
    responses=responses(400, 401, 409, 413, 422),
)
def create_webhook(body: WebhookCreate, response: Response, tenant: TenantDep, state: StateDep) -> WebhookCreated:
    try:
        targets.check(body.url, allow_private=state.settings.webhook_allow_private)
    except targets.TargetRefused as exc:
        raise invalid("url", str(exc)) from None
    record = state.webhooks.create(tenant, body.url, list(body.events), body.description)
    response.headers["Location"] = f"/v1/webhooks/{record['id']}"
    return WebhookCreated(**endpoint_view(record).model_dump(), secret=record["secret"])


@router.get("", summary="List endpoints", responses=responses(401))
def list_webhooks(tenant: TenantDep, state: StateDep) -> WebhookList:
    return WebhookList(items=[endpoint_view(r) for r in state.webhooks.list(tenant)])


@router.get("/{webhook_id}", summary="An endpoint (without its secret)", responses=responses(401, 404))
def get_webhook(webhook_id: str, tenant: TenantDep, state: StateDep) -> WebhookPublic:
    return endpoint_view(state.webhooks.get(tenant, webhook_id))


@router.delete("/{webhook_id}", status_code=204, summary="Delete an endpoint", responses=responses(401, 404))
def delete_webhook(webhook_id: str, tenant: TenantDep, state: StateDep) -> Response:
    state.webhooks.delete(tenant, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="A new signing secret (shown once; the old one also signs for 24 hours)",
    responses=responses(401, 404),
)
def rotate_secret(webhook_id: str, tenant: TenantDep, state: StateDep) -> WebhookSecret:
    record = state.webhooks.rotate_secret(tenant, webhook_id)
    return WebhookSecret(id=record["id"], secret=record["secret"], secret_rotated_at=record["secret_rotated_at"])


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    summary="Send a `webhook.test` event (its data: the endpoint)",
    responses=responses(401, 404),
)
def send_test(webhook_id: str, tenant: TenantDep, state: StateDep) -> WebhookTestSent:
    return WebhookTestSent(webhook_id=state.webhooks.send_test(tenant, webhook_id).webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    summary="The deliveries log, newest first: attempts, last status code or error, delivered_at",
    responses=responses(401, 404, 422),
)
def list_deliveries(
    webhook_id: str,
    tenant: TenantDep,
    state: StateDep,
    status: Annotated[str | None, Query(description="pending, delivered or failed")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    if status is not None and status not in DELIVERY_STATUSES:
        raise invalid("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
    items = state.webhooks.deliveries(tenant, webhook_id, limit=limit, status=status)
    return DeliveryList(items=[DeliveryPublic.model_validate(item) for item in items])
