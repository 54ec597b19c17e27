"""Consumer-group joins of a kafka-python consumer polled with short timeouts.

kafka-python 3 runs a group join (JoinGroup, then SyncGroup) as a task that a poll awaits for at
most its own timeout. A join that outlasts one poll is awaited again by the next, but one that
*completes between two polls* is never taken up: the next poll either throws it away and starts
another join (with millisecond polls, and a join that has to wait for another member, this
repeats for ever: a rebalance storm) or, when nothing else asks for a rejoin, leaves the member
rebalancing for good (no fetches, every commit refused). The store sinks of the test suite
showed both within seconds of a restart.

What the caller does about it: track the join through the rebalance callbacks (``JoinTracker``),
poll with a long timeout while a join is open (``infra.pacing.paced_poll`` does), and call
``repair_orphaned_join`` before each poll, which asks for a fresh join when the last one was
completed and left behind.
"""

from __future__ import annotations

import logging
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer

log = logging.getLogger(__name__)


def _names(parts) -> str:  # type: ignore[no-untyped-def]
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(parts)) or "none"


class JoinTracker(ConsumerRebalanceListener):
    """Whether the consumer is in a group join: from the start, and from each revocation, until
    partitions are assigned."""

    def __init__(self) -> None:
        self.joining = True
        self.since = time.monotonic()  # when the open join began (or the last one completed)
        self.joins = 0  # joins completed

    def open_for(self) -> float:
        """Seconds the current join has been open (0 when none is)."""
        return time.monotonic() - self.since if self.joining else 0.0

    def on_partitions_revoked(self, revoked) -> None:  # type: ignore[no-untyped-def]
        log.info("partitions revoked: %s", _names(revoked))
        if not self.joining:
            self.joining, self.since = True, time.monotonic()

    def on_partitions_assigned(self, assigned) -> None:  # type: ignore[no-untyped-def]
        log.info("partitions assigned: %s", _names(assigned))
        self.joining, self.since = False, time.monotonic()
        self.joins += 1


def repair_orphaned_join(consumer: KafkaConsumer) -> bool:
    """Ask for a fresh group join if the last one completed between two polls and was left
    behind (module docstring); True if it did. It reads two attributes of kafka-python's group
    coordinator (the join task, and whether a rejoin is wanted), as no public call tells; on a
    kafka-python without them it does nothing."""
    coordinator = getattr(consumer, "_coordinator", None)
    task = getattr(coordinator, "_join_task", None)
    if task is None or not getattr(task, "is_done", False) or coordinator.need_rejoin():
        return False
    log.info("a group join completed between two polls and was left behind: joining again")
    coordinator.request_rejoin()
    return True
