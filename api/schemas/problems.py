"""The RFC 9457 problem document every error response carries."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    field: str = Field(examples=["training.epochs"])
    message: str = Field(examples=["Input should be greater than or equal to 1"])


class Problem(BaseModel):
    """``application/problem+json``."""

    type: str = Field(examples=["https://trainapi.dev/problems/invalid-request"])
    title: str = Field(examples=["Invalid request"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["training.epochs: Input should be greater than or equal to 1"])
    instance: str | None = None
    errors: list[FieldError] | None = None


def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries documenting problem bodies for ``statuses``."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {"schema": Problem.model_json_schema()}}}
        for status in statuses
    }
