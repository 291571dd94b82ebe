"""What a failure while answering means for the client: ours to report, retry later, or a bug.

- A ``LeaderboardError`` is a deliberate answer, also when raised inside a shard actor or a
  ranking replica (Ray wraps it in a ``RayTaskError`` whose cause it is).
- A Ray process that is dead, restarting, overloaded or unreachable is ``Unavailable`` (503,
  Retry-After): retrying helps.
- Anything else, including an exception from our own code inside an actor, is a bug: 500,
  logged once with its traceback, and never advertised as retryable.
"""

from __future__ import annotations

import logging

from ray import exceptions as rx
from ray.serve import exceptions as sx

from leaderboard.actors.channel import ShardUnreachable
from leaderboard.errors import LeaderboardError, Unavailable

# A child of Serve's own logger: in a replica Serve writes only that logger to the replica's log
# file, and folds stderr into it at INFO, below the configured WARNING: a record that reached
# the root logger (and Python's last-resort stderr handler) would vanish, traceback and all.
log = logging.getLogger(f"ray.serve.{__name__}")

RAY_UNAVAILABLE: tuple[type[BaseException], ...] = (
    rx.RayActorError,  # ActorDiedError, ActorUnavailableError
    rx.WorkerCrashedError,
    rx.LocalRayletDiedError,
    rx.NodeDiedError,
    rx.ObjectLostError,
    rx.RpcError,
    rx.GetTimeoutError,
    rx.PendingCallsLimitExceeded,
    rx.ActorUnschedulableError,
    rx.TaskUnschedulableError,
    sx.BackPressureError,
    sx.DeploymentUnavailableError,
    sx.ReplicaUnavailableError,
    ShardUnreachable,  # a shard's direct channel (leaderboard/actors/channel.py)
)


class InternalError(LeaderboardError):
    """A bug: answered as 500 ``internal_error``."""

    def __init__(self) -> None:
        super().__init__("unexpected server error")


def as_service_error(exc: BaseException) -> LeaderboardError:
    """The answer for ``exc``; bugs are logged here, once."""
    if isinstance(exc, rx.RayTaskError) and isinstance(exc.cause, LeaderboardError):
        return exc.cause
    if isinstance(exc, LeaderboardError):
        return exc
    if isinstance(exc, RAY_UNAVAILABLE):
        log.warning("a Ray process is unavailable: %r", exc)
        return Unavailable("a shard or ranking replica is restarting or unreachable; retry")
    log.error("unhandled error while answering", exc_info=exc)
    return InternalError()
