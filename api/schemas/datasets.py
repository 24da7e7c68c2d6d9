"""Dataset schemas."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from api.schemas.jobs import Timestamp

#: Characters that reorder or hide text around them (bidirectional overrides, embeddings, isolates, marks).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable_name(value: str) -> str:
    for i, char in enumerate(value):
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"control character U+{ord(char):04X} at position {i}; a name is one line of text")
        if char in _BIDI_CONTROLS:
            raise ValueError(f"bidirectional control U+{ord(char):04X} at position {i}; it would disguise the name")
        if unicodedata.category(char) == "Cs":
            raise ValueError(f"invalid Unicode character (a lone surrogate) at position {i}")
    return value


#: A dataset's name, however it is sent (JSON ``name``, the multipart ``name`` field or the file's name):
#: 1 to 200 characters, no control characters, no bidirectional overrides.
DatasetName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable_name)]
DATASET_NAME: TypeAdapter[str] = TypeAdapter(DatasetName)


class DatasetCreate(BaseModel):
    """A small dataset sent as JSON (larger ones: multipart CSV or NPZ)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [{"name": "xor", "features": [[0, 0], [0, 1], [1, 0], [1, 1]], "target": ["a", "b", "b", "a"]}]
        },
    )

    name: DatasetName
    features: list[list[Any]] = Field(..., description="Rows of numbers, all of one length.")
    target: list[Any] = Field(..., description="One number or label per row.")
    feature_names: list[str] | None = None
    target_name: str | None = Field(None, max_length=200)


class LevelCount(BaseModel):
    level: str
    count: int


class ColumnSummary(BaseModel):
    """One column of a table: its type, gaps, and a summary of its values."""

    name: str
    type: str = Field(description="numeric, boolean (true/false, yes/no) or categorical (text).")
    missing: int = Field(description="Cells with no value.")
    min: float | None = Field(None, description="Numeric and boolean columns.")
    mean: float | None = None
    max: float | None = None
    distinct: int | None = Field(None, description="Categorical columns: levels present.")
    top: list[LevelCount] | None = Field(None, description="Categorical columns: the most frequent levels.")


class DatasetPublic(BaseModel):
    """A built-in or uploaded dataset."""

    id: str = Field(examples=["ds_0f3c…", "iris"])
    name: str
    source: str = Field(description="builtin or upload")
    n_samples: int
    n_features: int
    task: str | None = Field(description="Task guess: classification or regression.")
    classes: list[Any] | None = None
    feature_names: list[str]
    target_name: str
    description: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    created_at: Timestamp | None = None
    rows_missing_target: int = Field(0, description="Rows whose target is missing (left out of training).")
    columns: list[ColumnSummary] | None = Field(None, description="Every column, the target included (uploads).")
    notes: list[str] = Field(default_factory=list, description="What parsing did that you should know.")


class DatasetList(BaseModel):
    items: list[DatasetPublic]


class DatasetRows(BaseModel):
    """The first rows of a dataset, as a table: features in order, then the target."""

    columns: list[str] = Field(examples=[["x0", "x1", "label"]])
    rows: list[list[Any]] = Field(
        description="One list per row, in column order; a missing value is null.", examples=[[[0.5, 1.25, "a"]]]
    )
    n_samples: int = Field(description="Rows in the whole dataset.")
