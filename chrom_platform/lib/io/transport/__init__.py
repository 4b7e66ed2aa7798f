"""Transport adapters behind one interface (see base.py): the local SQLite queue and
Google Pub/Sub. `open_transport` picks one from a URI, so the profile switch stays in
settings."""

from __future__ import annotations

from urllib.parse import urlparse

from chrom_platform.lib.io.transport.base import (
    DEAD_LETTER_SUBSCRIPTION,
    DEAD_LETTER_TOPIC,
    LANDING_SUBSCRIPTION,
    LIVE_BRIDGE_SUBSCRIPTION,
    READINGS_TOPIC,
    MessageBatch,
    OutMessage,
    ReceivedMessage,
    SubscriptionConfig,
    Transport,
    TransportError,
    ensure_readings_topology,
)

PUBSUB_SCHEME = "pubsub://"

__all__ = [
    "DEAD_LETTER_SUBSCRIPTION",
    "DEAD_LETTER_TOPIC",
    "LANDING_SUBSCRIPTION",
    "LIVE_BRIDGE_SUBSCRIPTION",
    "READINGS_TOPIC",
    "MessageBatch",
    "OutMessage",
    "ReceivedMessage",
    "SubscriptionConfig",
    "Transport",
    "TransportError",
    "ensure_readings_topology",
    "open_transport",
    "owns_topology",
]


def owns_topology(uri: str) -> bool:
    """Whether opening `uri` should create the readings topology by default. The local queue
    is ours, so yes. Pub/Sub's belongs to the deployment (Terraform creates it): the
    consumers' and the publisher's service accounts may only subscribe or publish, and a
    create at every start would fail with PermissionDenied. `--create-topology` asks for
    it there (a first deployment by hand, an emulator)."""
    return not uri.startswith(PUBSUB_SCHEME)


def open_transport(uri: str) -> Transport:
    """`sqlite:///abs/path.db` or a plain path: the local queue; `pubsub://<project>`:
    Google Pub/Sub (emulator when PUBSUB_EMULATOR_HOST is set)."""
    parsed = urlparse(uri)
    if parsed.scheme == "pubsub":
        from chrom_platform.lib.io.transport.pubsub import PubSubTransport

        return PubSubTransport(parsed.netloc)
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue

    if parsed.scheme == "sqlite":
        return SqliteQueue(parsed.path)
    if parsed.scheme == "":
        return SqliteQueue(uri)
    raise ValueError(f"unsupported transport URI {uri!r}: expected a path, sqlite:/// or pubsub://")
