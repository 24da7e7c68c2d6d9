"""What a job's or a sweep's status can be, in one place: Python reads these names, and every Lua script gets
a job's here."""

from __future__ import annotations

from typing import Literal, get_args

JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled", "pruned"]
STATUSES: tuple[str, ...] = get_args(JobStatus)
ACTIVE = STATUSES[:3]
TERMINAL = STATUSES[3:]
#: Why a job stopped before its last epoch (``stop_reason`` of a succeeded or pruned job).
StopReason = Literal["early_stopping", "max_runtime", "pruned"]
#: A worker's attempt to start a job: ``ok``, or why not.
ClaimOutcome = Literal["ok", "missing", "terminal", "cancelled", "leased", "exhausted"]

#: A sweep's status; ``failed`` when every trial failed.
SweepStatus = Literal["running", "cancelling", "succeeded", "failed", "cancelled"]
SWEEP_TERMINAL: tuple[str, ...] = get_args(SweepStatus)[2:]

#: Prepended to the Lua scripts that ask whether a job has ended: ``TERMINAL[status]`` is true then.
TERMINAL_LUA = "local TERMINAL = {" + ", ".join(f"['{status}'] = true" for status in TERMINAL) + "}\n"
