"""`chrom-bridge`: the streaming consumers as long-running processes (the Cloud Run form).

chrom-bridge serve         live bridge (InfluxDB) and landing consumer, until SIGINT/SIGTERM
chrom-bridge serve --only live|landing
chrom-bridge drain         settle what is queued now, print a JSON summary, exit
chrom-bridge dead-letters  list dead-lettered messages with their reasons (acks them with --ack)

Settings come from the environment (see chrom_platform/settings.py), like Dagster's.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from chrom_platform.lib.landing_consumer import LandingConsumer
from chrom_platform.lib.objectstore import open_store
from chrom_platform.lib.transport import DEAD_LETTER_SUBSCRIPTION
from chrom_platform.settings import Settings


def _emit(kind: str, summary: dict[str, Any]) -> None:
    print(json.dumps({"consumer": kind, "t": round(time.time(), 3), **summary}), flush=True)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    cfg = settings.streaming()
    md = cfg.master_data()
    stop = threading.Event()

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
                on_step=(lambda r: _emit("live", r.summary())) if args.verbose else None,
            )
            _emit("live", total.summary())

        threads.append(threading.Thread(target=live, name="live-bridge"))
    if args.only in (None, "landing"):
        consumer = LandingConsumer(cfg.transport(), open_store(settings.landing_uri), md)

        def landing() -> None:
            total = consumer.serve(
                stop.is_set,
                flush_every_s=args.flush_every_s,
                on_flush=(lambda r: _emit("landing", r.summary())) if args.verbose else None,
            )
            _emit("landing", total.summary())

        threads.append(threading.Thread(target=landing, name="landing"))
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
    return 0


def cmd_drain(args: argparse.Namespace, settings: Settings) -> int:
    cfg = settings.streaming()
    md = cfg.master_data()
    if args.only in (None, "live"):
        rep = cfg.bridge().drain(args.max_messages, args.max_seconds)
        _emit("live", rep.summary())
    if args.only in (None, "landing"):
        lrep = LandingConsumer(cfg.transport(), open_store(settings.landing_uri), md).drain(
            args.max_messages, args.max_seconds
        )
        _emit("landing", lrep.summary())
    return 0


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    tr = settings.streaming().transport()
    shown = 0
    while shown < args.limit and (got := tr.pull(DEAD_LETTER_SUBSCRIPTION, 500)):
        for m in got[: args.limit - shown]:
            print(
                json.dumps(
                    {
                        "message_id": m.message_id,
                        "attributes": dict(m.attributes),
                        "data": m.data[:300].decode(errors="replace"),
                    }
                )
            )
        shown += len(got)
        (tr.ack if args.ack else tr.nack)(DEAD_LETTER_SUBSCRIPTION, [m.ack_id for m in got])
        if not args.ack:
            break
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="chrom-bridge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the consumers until SIGINT/SIGTERM")
    s.add_argument("--only", choices=["live", "landing"])
    s.add_argument("--batch-size", type=int, default=5000)
    s.add_argument("--flush-every-s", type=float, default=10.0, help="landing micro-batch age")
    s.add_argument("--verbose", action="store_true", help="one JSON line per batch")
    d = sub.add_parser("drain", help="settle what is queued now and exit")
    d.add_argument("--only", choices=["live", "landing"])
    d.add_argument("--max-messages", type=int, default=1_000_000)
    d.add_argument("--max-seconds", type=float, default=300.0)
    dl = sub.add_parser("dead-letters", help="show dead-lettered messages and reasons")
    dl.add_argument("--limit", type=int, default=50)
    dl.add_argument("--ack", action="store_true", help="remove the ones shown")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    handler = {"serve": cmd_serve, "drain": cmd_drain, "dead-letters": cmd_dead_letters}
    return handler[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
