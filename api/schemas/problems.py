"""The RFC 9457 problem document every error response carries."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    field: str = Field(examples=["training.epochs"])
    message: str = Field(examples=["Input should be greater than or equal to 1"])


class BadCell(BaseModel):
    """One bad cell of an uploaded table (``column`` null: the whole row, e.g. a wrong field count)."""

    row: int = Field(description="1-based data row (the header is not a row).", examples=[3])
    line: int = Field(description="Physical line where the row starts.", examples=[4])
    column: str | None = Field(examples=["age"])
    value: str = Field(examples=["abc"])
    reason: str = Field(examples=["not a number, in a numeric column (97% of its values are numbers)"])


class Problem(BaseModel):
    """``application/problem+json``."""

    type: str = Field(examples=["https://trainapi.dev/problems/invalid-request"])
    title: str = Field(examples=["Invalid request"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["training.epochs: Input should be greater than or equal to 1"])
    instance: str | None = None
    errors: list[FieldError] | None = None
    bad_cells: list[BadCell] | None = Field(None, description="A bad table: its first 20 bad cells, in file order.")


def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries documenting problem bodies for ``statuses``."""
    # A $ref, not the model's own JSON schema: that one carries "$defs" whose "#/$defs/..." pointers
    # do not resolve inside the OpenAPI document (ReDoc refuses to render it).
    problem = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"model": Problem, "content": {"application/problem+json": {"schema": problem}}} for status in statuses
    }
