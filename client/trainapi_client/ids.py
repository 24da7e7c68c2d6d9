"""Ids on the command line: a full id, or a unique prefix of one, resolved through the list endpoints.

``job_3f2a`` and ``3f2a`` both name ``job_3f2a…`` when no other job's id starts so. A full
id (``job_`` and 32 hex digits) is used as it is, without a listing. Text that starts
no id is :class:`NotFound` (exit status 1, as the service's 404 would be); a prefix of
several ids is a usage error that lists them (exit status 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from trainapi_client.arguments import UsageError
from trainapi_client.client import Client
from trainapi_client.errors import NotFound

#: Jobs, sweeps and uploaded datasets: ``{prefix}`` and a uuid4's 32 hex digits (the store's ids).
PREFIXES = {"job": "job_", "sweep": "swp_", "dataset": "ds_"}
#: At most this many sweeps can be found by prefix: the newest (``GET /v1/sweeps`` lists no more).
SWEEPS_LISTED = 200


def resolve(kind: str, text: str, ids: Iterable[str], where: str = "") -> str:
    """The one id among ``ids`` equal to ``text`` or starting with it (with or without the kind's prefix).

    Raises :class:`NotFound` when none does, :class:`UsageError` when several do.
    """
    prefix = PREFIXES[kind]
    matches = []
    for candidate in ids:
        if candidate == text:
            return candidate
        if candidate.startswith((text, prefix + text)):
            matches.append(candidate)
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(sorted(matches)[:5]) + (", ..." if len(matches) > 5 else "")
        raise UsageError(f"{text!r} is the start of {len(matches)} {kind} ids ({shown}); give more of it")
    raise NotFound(404, "Not Found", f"no {kind} id starts with {text!r}{where}")


def is_full(kind: str, text: str) -> bool:
    return re.fullmatch(re.escape(PREFIXES[kind]) + "[0-9a-f]{32}", text) is not None


def job_id(client: Client, text: str) -> str:
    if is_full("job", text):
        return text
    return resolve("job", text, (job.id for job in client.jobs.list(page_size=500)))


def sweep_id(client: Client, text: str) -> str:
    if is_full("sweep", text):
        return text
    sweeps = client.sweeps.list(limit=SWEEPS_LISTED)
    where = (
        f" among the newest {SWEEPS_LISTED} sweeps (give an older one's full id)"
        if len(sweeps) == SWEEPS_LISTED
        else ""
    )
    return resolve("sweep", text, (sweep.id for sweep in sweeps), where)


def dataset_id(client: Client, text: str) -> str:
    if is_full("dataset", text):
        return text
    return resolve("dataset", text, (dataset.id for dataset in client.datasets.list()))
