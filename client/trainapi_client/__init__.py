"""Python client of the trainapi training service: ``Client``, ``AsyncClient``, typed results, one error family."""

__version__ = "0.1.0"

from trainapi_client.client import AsyncClient, Client
from trainapi_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationError,
)
from trainapi_client.models import (
    ColumnSummary,
    Dataset,
    DatasetSummary,
    EpochMetrics,
    Job,
    JobError,
    LevelCount,
    Path,
    PathPoint,
    PathSummary,
    Prediction,
    Progress,
    Sweep,
    TestMetrics,
    Trial,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "ColumnSummary",
    "Conflict",
    "Dataset",
    "DatasetSummary",
    "EpochMetrics",
    "Job",
    "JobError",
    "LevelCount",
    "NotFound",
    "Path",
    "PathPoint",
    "PathSummary",
    "Prediction",
    "Progress",
    "RateLimited",
    "Sweep",
    "TestMetrics",
    "Trial",
    "Unavailable",
    "ValidationError",
    "__version__",
]
