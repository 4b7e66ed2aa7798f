"""`chrom-bridge`: the streaming consumers as long-running processes (the Cloud Run form).

chrom-bridge serve         live bridge (InfluxDB) and landing consumer, until SIGINT/SIGTERM
chrom-bridge serve --only live|landing
chrom-bridge drain         settle what is queued now, print a JSON summary, exit
chrom-bridge dead-letters  list dead-lettered messages with their reasons (acks them with --ack)

Settings come from the environment (see chrom_platform/settings.py), like Dagster's, and are
checked at start for the profile (`chrom check-config`): a gcp deployment with a missing
setting stops with the list of problems instead of running on local defaults. Logs go to
stderr (INFO: outages, retries, recoveries, dead letters; --verbose adds every batch); a
consumer that dies ends the process with exit code 1, so a supervisor restarts it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chrom_platform import check_config
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.lib.io.transport import DEAD_LETTER_SUBSCRIPTION
from chrom_platform.lib.io.transport.base import ATTR_REASON, attempts_exceeded_reason
from chrom_platform.lib.streaming.config import StreamingConfig
from chrom_platform.settings import Settings, SettingsError

if TYPE_CHECKING:
    from chrom_platform.lib.streaming.consumer import SubscriptionConsumer

log = logging.getLogger("chrom.bridge_cli")


def _emit(kind: str, summary: dict[str, Any]) -> None:
    print(json.dumps({"consumer": kind, "t": round(time.time(), 3), **summary}), flush=True)


def _streaming(args: argparse.Namespace, settings: Settings) -> StreamingConfig:
    cfg = settings.streaming
    if getattr(args, "create_topology", False):
        cfg = dataclasses.replace(cfg, create_topology=True)
    return cfg


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    cfg = _streaming(args, settings)
    stop = threading.Event()
    failed: list[str] = []

    def guarded(name: str, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException:
                # never a quiet death: say why, stop the others, exit non-zero
                log.exception("%s consumer died; stopping chrom-bridge", name)
                failed.append(name)
                stop.set()

        return run

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    threads: list[threading.Thread] = []
    if args.only in (None, "live"):
        bridge = cfg.bridge(batch_size=args.batch_size)

        def live() -> None:
            total = bridge.serve(
                stop.is_set,
                on_report=(lambda r: _emit("live", r.summary())) if args.verbose else None,
            )
            _emit("live", total.summary())

        threads.append(threading.Thread(target=guarded("live", live), name="live-bridge"))
    if args.only in (None, "landing"):
        consumer = cfg.landing_consumer(
            open_store(settings.landing_uri), batch_size=args.landing_batch_size
        )

        def landing() -> None:
            total = consumer.serve(
                stop.is_set,
                flush_every_s=args.flush_every_s,
                on_flush=(lambda r: _emit("landing", r.summary())) if args.verbose else None,
            )
            _emit("landing", total.summary())

        threads.append(threading.Thread(target=guarded("landing", landing), name="landing"))
    log.info("chrom-bridge serving %s (profile %s)", [t.name for t in threads], settings.profile)
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
    if failed:
        log.error("chrom-bridge exits 1: %s consumer died (see above)", ", ".join(failed))
        return 1
    return 0


def cmd_drain(args: argparse.Namespace, settings: Settings) -> int:
    cfg = _streaming(args, settings)
    if args.only in (None, "live"):
        bridge = cfg.bridge()
        rep = bridge.drain(args.max_messages, args.max_seconds)
        _emit("live", {**rep.summary(), **_left(bridge)})
    if args.only in (None, "landing"):
        consumer = cfg.landing_consumer(open_store(settings.landing_uri))
        lrep = consumer.drain(args.max_messages, args.max_seconds)
        _emit("landing", {**lrep.summary(), **_left(consumer)})
    return 0


def _left(consumer: SubscriptionConsumer) -> dict[str, Any]:
    """What `drain` could not settle, where the queue can count it (the local queue; Pub/Sub
    shows its backlog in Cloud Monitoring): messages leased by another consumer, running or
    stopped, come back when the lease ends; said, so an empty pull never reads as done."""
    backlog = getattr(consumer.transport, "backlog", None)
    if backlog is None:
        return {}
    left = int(backlog(consumer.subscription))
    if left:
        log.warning(
            "%s: %d message(s) not settled: leased by another consumer until its lease "
            "ends, or published meanwhile; run drain again after the ack deadline",
            consumer.subscription,
            left,
        )
    return {"left_unsettled": left}


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    tr = _streaming(args, settings).transport()
    shown = 0
    while shown < args.limit and (got := tr.pull(DEAD_LETTER_SUBSCRIPTION, 500)):
        for m in got[: args.limit - shown]:
            attrs = dict(m.attributes)
            print(
                json.dumps(
                    {
                        "message_id": m.message_id,
                        "reason": _reason(attrs),
                        "attributes": attrs,
                        "data": m.data[:300].decode(errors="replace"),
                    }
                )
            )
        shown += len(got)
        (tr.ack if args.ack else tr.nack)(DEAD_LETTER_SUBSCRIPTION, [m.ack_id for m in got])
        if not args.ack:
            break
    return 0


#: set by Pub/Sub's own dead-letter forwarding, which cannot carry a reason
_PUBSUB_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"


def _reason(attrs: dict[str, str]) -> str:
    """Why a message is a dead letter: ours say so; Pub/Sub's forwarding gives a count."""
    if ATTR_REASON in attrs:
        return attrs[ATTR_REASON]
    if _PUBSUB_DELIVERY_COUNT in attrs:
        return attempts_exceeded_reason(int(attrs[_PUBSUB_DELIVERY_COUNT]), None)
    return "unknown: published to the dead-letter topic without a reason"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="chrom-bridge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the consumers until SIGINT/SIGTERM")
    s.add_argument("--only", choices=["live", "landing"])
    s.add_argument("--batch-size", type=int, default=5000, help="live bridge messages per pull")
    s.add_argument(
        "--landing-batch-size", type=int, default=20_000, help="landing messages per pull"
    )
    s.add_argument("--flush-every-s", type=float, default=10.0, help="landing micro-batch age")
    s.add_argument("--verbose", action="store_true", help="one JSON line per batch")
    d = sub.add_parser("drain", help="settle what is queued now and exit")
    d.add_argument("--only", choices=["live", "landing"])
    for p in (s, d):
        p.add_argument(
            "--create-topology",
            action="store_true",
            help="create the topics and subscriptions first (Pub/Sub: a first deployment or"
            " an emulator; the local queue always has them)",
        )
    d.add_argument("--max-messages", type=int, default=1_000_000)
    d.add_argument("--max-seconds", type=float, default=300.0)
    dl = sub.add_parser("dead-letters", help="show dead-lettered messages and reasons")
    dl.add_argument("--limit", type=int, default=50)
    dl.add_argument("--ack", action="store_true", help="remove the ones shown")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        check_config.require(os.environ, streaming_only=True)
    except SettingsError as e:
        log.error("chrom-bridge will not start: %s", e)
        return 2
    settings = Settings.from_env()
    handler = {"serve": cmd_serve, "drain": cmd_drain, "dead-letters": cmd_dead_letters}
    return handler[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
