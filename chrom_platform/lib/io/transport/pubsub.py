"""The production transport: Google Pub/Sub through google-cloud-pubsub.

Synchronous pull (bounded work per call, which is what a Dagster sensor tick and a Cloud Run
loop both want), ordering key = unit_id, dead-letter policy on the subscription, nack as
`modify_ack_deadline(0)`. Pub/Sub cannot run on this machine; the contract suite runs this
adapter through the real client library over gRPC against a stand-in server
(chrom_platform_tests/contract/fake_pubsub.py), so request shapes, attributes, ordering keys
and the ack flow are checked with the library's own types.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from chrom_platform.lib.io.transport.base import (
    MessageBatch,
    OutMessage,
    ReceivedMessage,
    SubscriptionConfig,
    TransportError,
)

#: Pub/Sub limits an acknowledge/modifyAckDeadline request to 512 KB; ack ids are ~200 bytes.
_ACK_CHUNK = 1000
#: Pub/Sub's own bounds for a dead-letter policy.
MIN_DELIVERY_ATTEMPTS, MAX_DELIVERY_ATTEMPTS = 5, 100


class PubSubTransport:
    def __init__(
        self,
        project: str,
        *,
        publish_timeout_s: float = 60.0,
        pull_timeout_s: float = 10.0,
    ) -> None:
        # Imported here so the local profile never loads gRPC.
        from google.cloud import pubsub_v1

        if not project:
            raise ValueError("Pub/Sub needs a project id (pubsub://<project>)")
        self.project = project
        self.publish_timeout_s = publish_timeout_s
        self.pull_timeout_s = pull_timeout_s
        self._publisher = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
        self._subscriber = pubsub_v1.SubscriberClient()

    def topic_path(self, name: str) -> str:
        return f"projects/{self.project}/topics/{name}"

    def subscription_path(self, name: str) -> str:
        return f"projects/{self.project}/subscriptions/{name}"

    def create_topic(self, name: str) -> None:
        from google.api_core.exceptions import AlreadyExists

        with contextlib.suppress(AlreadyExists):
            self._publisher.create_topic(request={"name": self.topic_path(name)})

    def create_subscription(self, config: SubscriptionConfig) -> None:
        from google.api_core.exceptions import AlreadyExists

        request: dict[str, Any] = {
            "name": self.subscription_path(config.name),
            "topic": self.topic_path(config.topic),
            "ack_deadline_seconds": max(10, min(600, round(config.ack_deadline_s))),
            "enable_message_ordering": config.ordered,
        }
        if config.retention_s is not None:
            # Pub/Sub retains 10 minutes to 31 days; a byte bound is the local queue's alone
            request["message_retention_duration"] = {
                "seconds": int(max(600, min(31 * 86_400, config.retention_s)))
            }
        if config.dead_letter_topic is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": self.topic_path(config.dead_letter_topic),
                "max_delivery_attempts": max(
                    MIN_DELIVERY_ATTEMPTS,
                    min(MAX_DELIVERY_ATTEMPTS, config.max_delivery_attempts),
                ),
            }
        with contextlib.suppress(AlreadyExists):
            self._subscriber.create_subscription(request=request)

    def publish(self, topic: str, messages: Sequence[OutMessage]) -> list[str]:
        path = self.topic_path(topic)
        futures = [
            self._publisher.publish(path, m.data, ordering_key=m.ordering_key, **m.attributes)
            for m in messages
        ]
        ids: list[str] = []
        failed_keys: set[str] = set()
        error: Exception | None = None
        for m, f in zip(messages, futures, strict=True):
            try:
                ids.append(f.result(timeout=self.publish_timeout_s))
            except Exception as e:
                error = error or e
                if m.ordering_key:
                    failed_keys.add(m.ordering_key)
        for key in failed_keys:
            # After a failure the client pauses the key so order cannot break silently; the
            # caller retries the whole batch (at-least-once), so resume it for that retry.
            self._publisher.resume_publish(path, key)
        if error is not None:
            raise TransportError(f"publish to {topic} failed: {error}") from error
        return ids

    def pull(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> list[ReceivedMessage]:
        # `consumer` has no meaning for a synchronous pull: Pub/Sub itself decides which
        # keys it hands out while earlier messages are outstanding.
        from google.api_core.exceptions import DeadlineExceeded

        try:
            resp = self._subscriber.pull(
                request={
                    "subscription": self.subscription_path(subscription),
                    "max_messages": max_messages,
                },
                timeout=self.pull_timeout_s,
            )
        except DeadlineExceeded:
            return []
        return [
            ReceivedMessage(
                ack_id=r.ack_id,
                message_id=r.message.message_id,
                data=r.message.data,
                attributes=dict(r.message.attributes),
                ordering_key=r.message.ordering_key,
                publish_time_ns=int(r.message.publish_time.timestamp() * 1e9),
                # 0 when the subscription has no dead-letter policy; count starts at 1
                delivery_attempt=max(1, r.delivery_attempt),
            )
            for r in resp.received_messages
        ]

    def pull_batch(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> MessageBatch:
        return MessageBatch.of(self.pull(subscription, max_messages, consumer=consumer))

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        path = self.subscription_path(subscription)
        for i in range(0, len(ack_ids), _ACK_CHUNK):
            self._subscriber.acknowledge(
                request={"subscription": path, "ack_ids": list(ack_ids[i : i + _ACK_CHUNK])}
            )

    def nack(self, subscription: str, ack_ids: Sequence[str], *, error: str = "") -> None:
        # Pub/Sub keeps no reason with a nack: its dead-letter policy forwards with
        # CloudPubSubDeadLetterSourceDeliveryCount, which `chrom-bridge dead-letters` names.
        self.extend(subscription, ack_ids, 0)

    def extend(self, subscription: str, ack_ids: Sequence[str], seconds: float) -> None:
        path = self.subscription_path(subscription)
        for i in range(0, len(ack_ids), _ACK_CHUNK):
            self._subscriber.modify_ack_deadline(
                request={
                    "subscription": path,
                    "ack_ids": list(ack_ids[i : i + _ACK_CHUNK]),
                    "ack_deadline_seconds": min(600, round(seconds)),
                }
            )

    def close(self) -> None:
        self._publisher.stop()
        self._subscriber.close()
