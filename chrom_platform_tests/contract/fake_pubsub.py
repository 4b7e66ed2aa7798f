"""A stand-in Pub/Sub server (a stub, named for what it is) for the contract tests.

Google's Pub/Sub emulator is a Java gcloud component and does not install from PyPI, so
this serves the handful of Pub/Sub gRPC methods our adapter calls, decoding and encoding
with google-cloud-pubsub's own message types, and keeps the messages in the local
SqliteQueue. It checks what the adapter sends (request shapes, attributes, ordering keys,
ack ids, dead-letter policy); it does not claim to reproduce Pub/Sub's server behaviour
beyond what the shared contract suite asserts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1 import types as t

from chrom_platform.lib.io.transport import OutMessage, SubscriptionConfig
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


class FakePubSubServer:
    def __init__(self, db_path: Path, clock: Callable[[], float]) -> None:
        self.queue = SqliteQueue(db_path, clock=clock)
        self.topics: set[str] = set()
        self.subscriptions: dict[str, Any] = {}
        self.requests: list[tuple[str, Any]] = []  # what the adapter sent, for assertions
        #: answer creates as Pub/Sub answers a service account with only the publisher or
        #: subscriber role (what Terraform grants the workloads)
        self.deny_admin = False
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers(
            (
                self._service(
                    "google.pubsub.v1.Publisher",
                    {
                        "CreateTopic": (t.Topic, t.Topic, self.create_topic),
                        "Publish": (t.PublishRequest, t.PublishResponse, self.publish),
                    },
                ),
                self._service(
                    "google.pubsub.v1.Subscriber",
                    {
                        "CreateSubscription": (
                            t.Subscription,
                            t.Subscription,
                            self.create_subscription,
                        ),
                        "Pull": (t.PullRequest, t.PullResponse, self.pull),
                        "Acknowledge": (t.AcknowledgeRequest, None, self.acknowledge),
                        "ModifyAckDeadline": (
                            t.ModifyAckDeadlineRequest,
                            None,
                            self.modify_ack_deadline,
                        ),
                    },
                ),
            )
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def _service(self, name: str, methods: dict[str, Any]) -> grpc.GenericRpcHandler:
        handlers = {}
        for method, (req_t, resp_t, fn) in methods.items():

            def handler(request: Any, context: grpc.ServicerContext, fn: Any = fn, m: str = method):
                self.requests.append((m, request))
                return fn(request, context)

            handlers[method] = grpc.unary_unary_rpc_method_handler(
                handler,
                request_deserializer=req_t.deserialize,
                response_serializer=(
                    resp_t.serialize if resp_t is not None else empty_pb2.Empty.SerializeToString
                ),
            )
        return grpc.method_handlers_generic_handler(name, handlers)

    def start(self) -> str:
        self._server.start()
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)
        self.queue.close()

    # -- Publisher ----------------------------------------------------------------------

    def create_topic(self, req: t.Topic, ctx: grpc.ServicerContext) -> t.Topic:
        if self.deny_admin:
            ctx.abort(
                grpc.StatusCode.PERMISSION_DENIED, "User not authorized to perform this action."
            )
        if req.name in self.topics:
            ctx.abort(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
        self.topics.add(req.name)
        self.queue.create_topic(_short(req.name))
        return req

    def publish(self, req: t.PublishRequest, ctx: grpc.ServicerContext) -> t.PublishResponse:
        if req.topic not in self.topics:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "Topic not found")
        ids = self.queue.publish(
            _short(req.topic),
            [OutMessage(m.data, dict(m.attributes), m.ordering_key) for m in req.messages],
        )
        return t.PublishResponse(message_ids=ids)

    # -- Subscriber -----------------------------------------------------------------------

    def create_subscription(self, req: t.Subscription, ctx: grpc.ServicerContext) -> t.Subscription:
        if self.deny_admin:
            ctx.abort(
                grpc.StatusCode.PERMISSION_DENIED, "User not authorized to perform this action."
            )
        if req.name in self.subscriptions:
            ctx.abort(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
        dlp = req.dead_letter_policy
        if dlp.dead_letter_topic and not 5 <= dlp.max_delivery_attempts <= 100:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_delivery_attempts out of 5..100")
        self.subscriptions[req.name] = req
        self.queue.create_subscription(
            SubscriptionConfig(
                _short(req.name),
                _short(req.topic),
                ack_deadline_s=req.ack_deadline_seconds,
                max_delivery_attempts=dlp.max_delivery_attempts or 1_000_000,
                dead_letter_topic=_short(dlp.dead_letter_topic) if dlp.dead_letter_topic else None,
                ordered=req.enable_message_ordering,
            )
        )
        return req

    def pull(self, req: t.PullRequest, ctx: grpc.ServicerContext) -> t.PullResponse:
        if req.subscription not in self.subscriptions:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "Subscription not found")
        got = self.queue.pull(_short(req.subscription), req.max_messages)
        return t.PullResponse(
            received_messages=[
                t.ReceivedMessage(
                    ack_id=m.ack_id,
                    message=t.PubsubMessage(
                        data=m.data,
                        attributes=dict(m.attributes),
                        message_id=m.message_id,
                        publish_time=dt.datetime.fromtimestamp(m.publish_time_ns / 1e9, dt.UTC),
                        ordering_key=m.ordering_key,
                    ),
                    delivery_attempt=m.delivery_attempt,
                )
                for m in got
            ]
        )

    def acknowledge(self, req: t.AcknowledgeRequest, ctx: grpc.ServicerContext) -> Any:
        self.queue.ack(_short(req.subscription), list(req.ack_ids))
        return empty_pb2.Empty()

    def modify_ack_deadline(
        self, req: t.ModifyAckDeadlineRequest, ctx: grpc.ServicerContext
    ) -> Any:
        if req.ack_deadline_seconds == 0:
            self.queue.nack(_short(req.subscription), list(req.ack_ids))
        else:
            self.queue.extend(_short(req.subscription), list(req.ack_ids), req.ack_deadline_seconds)
        return empty_pb2.Empty()
