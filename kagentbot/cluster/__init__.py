"""Several replicas on shared state (`cluster.enabled`): the pieces a single process keeps in
itself (dedupe of redeliveries, conversation queues and leases, the leader's duties, scheduled
fires, the LLM slots and fairness counters, personas and the audit log) kept in Redis instead,
behind the same small interfaces the single-process pieces implement. docs/scaling.md says how
to run it."""

from kagentbot.cluster.redis import ClusterUnavailable, Keys, connect, replica_name

__all__ = ["ClusterUnavailable", "Keys", "connect", "replica_name"]
