"""The live bridge: `live-bridge` subscription -> InfluxDB, with live column volumes.

One function does the work (`LiveBridge.drain`): pull bounded batches, decode and validate
them, integrate flow per unit and batch with the platform's one CV rule (lib/core/cv.py), write
the points as one line-protocol request per chunk, dead-letter what cannot be written, and
only then acknowledge. The Dagster sensor calls `drain` (bounded by count and time per
tick); `chrom-bridge` calls `serve` (a loop of short drains, for low latency; the Cloud Run
form).

State: per unit, the last applied seq and timestamp and the CV integral of its current
batch. It is rebuilt from InfluxDB itself (the last point of each unit carries `seq`,
`volume_l`, `phase_cv`, `flow_lpm`, `batch_id`, `phase`), so a restarted or killed bridge
continues exactly where the durable data stops, with nothing else to keep in sync. A
reading at or behind that point is a duplicate (a redelivery after a crash between write
and ack, or a publisher resending) and is dead-lettered, never applied twice.

Delivery: acks happen only after InfluxDB accepted the write (204). If InfluxDB is down
the bridge does not pull at all (so a long outage cannot use up delivery attempts and push
good readings to the dead-letter topic); if it goes down mid-batch, the bridge keeps the
batch, extends its leases and retries with backoff until it is written or the caller's
time runs out, in which case the leases are released for a later try.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self, Unpack

import numpy as np

from chrom_platform.lib.analytics.live import LiveDrift, LiveEnvelope, LiveSource
from chrom_platform.lib.analytics.live_mspc import LiveModels, LiveMspc
from chrom_platform.lib.core.contracts import INFLUX_MEASUREMENT, SIGNALS
from chrom_platform.lib.core.cv import CvState, effective_flow, integrate
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.core.readings import Readings
from chrom_platform.lib.io.influx import (
    WRITE_CHUNK,
    InfluxError,
    InfluxSink,
    SinkRejected,
    SinkStillDown,
    SinkUnavailable,
    line_protocol,
    write_retrying,
)
from chrom_platform.lib.io.transport import (
    DEAD_LETTER_SUBSCRIPTION,
    LIVE_BRIDGE_SUBSCRIPTION,
    MessageBatch,
    Transport,
)
from chrom_platform.lib.streaming.consumer import (
    ConsumerOptions,
    ConsumerReport,
    SubscriptionConsumer,
)
from chrom_platform.lib.streaming.readings import Rejection, split_stale

#: The bridge's own health, for dashboards and alerts: one `bridge_health` point per report
#: (a sensor tick, or every HEALTH_EVERY_S of `serve`) and one `live_status` point per known
#: unit with the age of its newest reading and whether its batch is still running. Written
#: even when no reading arrives, so "a running unit went quiet" is a number Grafana can
#: alert on; if the bridge itself stops, these points stop (the "bridge silent" alert).
HEALTH_MEASUREMENT = "bridge_health"
STATUS_MEASUREMENT = "live_status"
HEALTH_EVERY_S = 10.0

log = logging.getLogger("chrom.bridge")

#: A reading of another batch than the unit's running one starts a new integral when it is
#: in its recipe's first phase (a batch controller starts every batch there), or when it is
#: the NEW_BATCH_PERSISTENCE-th of that batch in a row without the running batch in between
#: (a batch joined mid-recipe). The readings before are dead-lettered as `stray_batch`, so a
#: few stray readings (mislabelled messages, a replay of another batch) never reset the
#: running batch's column volumes.
NEW_BATCH_PERSISTENCE = 10

#: `serve` works in pipelined rounds of at most this long (see LiveBridge.serve).
SERVE_ROUND_S = 1.0


#: Newest points per unit read to rebuild its state (see LiveBridge.load_state).
_STATE_POINTS = 30


def _plausible_newest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Of a unit's newest points (newest first), the newest whose seq follows the clock
    from the point before it, as the bridge's own rule (split_stale) requires."""
    for i in range(len(rows) - 1):
        new, old = rows[i], rows[i + 1]
        if not split_stale(
            np.array([new["seq"]], dtype=np.int64),
            np.array([new["time"]], dtype=np.int64),
            int(old["seq"]),
            int(old["time"]),
        ):
            return new
    return rows[-1]


@dataclass
class UnitState:
    seq: int = -1
    ts_ns: int = -1
    batch_id: str | None = None
    cv: CvState | None = None


@dataclass
class BridgeReport(ConsumerReport):
    written: int = 0
    #: live drift points written beside the readings, and readings in a persistent drift
    drift_points: int = 0
    drift_alarms: int = 0
    #: live multivariate points (one per finished CV bin) and those in a persistent alarm
    mspc_points: int = 0
    mspc_alarms: int = 0
    #: seconds from a reading's timestamp to InfluxDB accepting it, for written readings
    lag_s: list[float] = field(default_factory=list)
    units: set[str] = field(default_factory=set)
    sink_down: bool = False
    #: why the sink is down, as the last failure said it (unreachable, 5xx, credentials)
    outage: str | None = None
    #: InfluxDB refused some lines: the in-memory state no longer follows what was written
    resync: bool = False

    def merge(self, other: Self) -> None:
        super().merge(other)
        self.written += other.written
        self.drift_points += other.drift_points
        self.drift_alarms += other.drift_alarms
        self.mspc_points += other.mspc_points
        self.mspc_alarms += other.mspc_alarms
        self.lag_s.extend(other.lag_s)
        self.units |= other.units
        self.sink_down = self.sink_down or other.sink_down
        self.outage = other.outage or self.outage

    def summary(self) -> dict[str, Any]:
        lag = np.asarray(self.lag_s) if self.lag_s else None
        return {
            **super().summary(),
            "points_written": self.written,
            "drift_points": self.drift_points,
            "drift_alarms": self.drift_alarms,
            "mspc_points": self.mspc_points,
            "mspc_alarms": self.mspc_alarms,
            "lag_p50_s": None if lag is None else round(float(np.percentile(lag, 50)), 3),
            "lag_max_s": None if lag is None else round(float(lag.max()), 3),
            "sink_down": self.sink_down,
            "outage": self.outage,
            "units": sorted(self.units),
        }


@dataclass
class _Prepared:
    msgs: MessageBatch
    lines: list[bytes]
    applied: Readings
    rejected: list[Rejection]
    drift_points: int = 0
    drift_alarms: int = 0
    mspc_points: int = 0
    mspc_alarms: int = 0


@dataclass
class _Applied:
    lines: list[bytes]
    state: dict[str, UnitState]
    readings: Readings
    stale: list[Rejection]
    phase_cv: np.ndarray
    batch_cv: np.ndarray


class LiveBridge(SubscriptionConsumer):
    SUBSCRIPTION = LIVE_BRIDGE_SUBSCRIPTION
    BATCH_SIZE = 5000

    def __init__(
        self,
        transport: Transport,
        sink: InfluxSink,
        master_data: MasterData,
        *,
        lease_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        envelope: LiveSource[LiveEnvelope] | None = None,
        models: LiveSource[LiveModels] | None = None,
        **options: Unpack[ConsumerOptions],
    ) -> None:
        super().__init__(transport, master_data, **options)
        self.sink = sink
        self.lease_s = lease_s
        self.sleep = sleep
        self.state: dict[str, UnitState] | None = None
        #: names this bridge's leases, so it may pull a unit's next readings while it still
        #: writes the previous ones (see SqliteQueue.pull)
        self.consumer_id = f"live-bridge-{uuid.uuid4().hex[:8]}"
        self._sink_ok = False  # unknown until pinged or written to
        #: live drift against the golden envelope (None: no drift points)
        self.drift = LiveDrift(envelope, master_data) if envelope is not None else None
        #: live multivariate scoring of each finished CV bin (None: no mspc points)
        self.mspc = LiveMspc(models, master_data) if models is not None else None
        #: a unit whose newest reading is in one of these phases has finished its batch
        self._final_phases = {r.phase_names()[-1] for r in master_data.recipes.values()}
        self._first_phase = {name: r.phase_names()[0] for name, r in master_data.recipes.items()}
        #: per unit: (candidate batch, readings of it in a row) while it lacks evidence
        self._candidates: dict[str, tuple[str, int]] = {}

    def use_master_data(self, master_data: MasterData) -> None:
        """As the base, and the drift and multivariate scoring rebuilt on it with their
        persistence counts and running batches kept."""
        super().use_master_data(master_data)
        out_runs, running = self.out_runs, self.mspc_running
        if self.drift is not None:
            self.drift = LiveDrift(self.drift.source, master_data)
        if self.mspc is not None:
            self.mspc = LiveMspc(self.mspc.source, master_data)
        self.out_runs, self.mspc_running = out_runs, running
        self._final_phases = {r.phase_names()[-1] for r in master_data.recipes.values()}
        self._first_phase = {name: r.phase_names()[0] for name, r in master_data.recipes.items()}

    @property
    def out_runs(self) -> dict[str, list[int]]:
        """Live drift persistence counts per unit (JSON-able, for a sensor's cursor)."""
        return self.drift.out_runs if self.drift is not None else {}

    @out_runs.setter
    def out_runs(self, value: dict[str, list[int]]) -> None:
        if self.drift is not None:
            self.drift.out_runs = value

    @property
    def mspc_running(self) -> dict[str, dict[str, Any]]:
        """Live multivariate scoring's running batches (JSON-able, for a sensor's cursor)."""
        return self.mspc.running if self.mspc is not None else {}

    @mspc_running.setter
    def mspc_running(self, value: dict[str, dict[str, Any]]) -> None:
        if self.mspc is not None:
            self.mspc.running = value

    # -- state --------------------------------------------------------------------------

    def load_state(self) -> dict[str, UnitState]:
        """Where each unit stands, from the last plausible point InfluxDB holds for it:
        points stamped ahead of the clock are passed over, and so is a newest point whose
        seq its predecessors cannot explain (both written before the bridge refused them),
        so neither can hold a unit's live data hostage across restarts."""
        latest = time.time_ns() + self.max_ahead_ns
        series = self.sink.query(
            'SELECT "seq", "volume_l", "phase_cv", "flow_lpm", "batch_id", "phase"'
            f' FROM "{INFLUX_MEASUREMENT}" WHERE time <= {latest}'
            f' GROUP BY "unit_id" ORDER BY time DESC LIMIT {_STATE_POINTS}'
        )
        state: dict[str, UnitState] = {}
        for s in series:
            unit_id = s["tags"]["unit_id"]
            rows = [dict(zip(s["columns"], v, strict=True)) for v in s["values"]]
            row = _plausible_newest(rows)
            unit = self.md.units.get(unit_id)
            if unit is None:
                continue
            vol = float(row["volume_l"])
            state[unit_id] = UnitState(
                seq=int(row["seq"]),
                ts_ns=int(row["time"]),
                batch_id=row["batch_id"],
                cv=CvState(
                    ts_ns=int(row["time"]),
                    flow_eff_lpm=float(effective_flow(row["flow_lpm"], unit.flow_deadband_lpm)),
                    volume_l=vol,
                    phase=row["phase"],
                    phase_start_volume_l=vol - float(row["phase_cv"]) * unit.column_volume_l,
                ),
            )
        return state

    # -- one batch --------------------------------------------------------------------------

    def _sink_ready(self) -> bool:
        """Before pulling: is InfluxDB up? Pinged only while that is unknown or was last seen
        false (a failed write says so), not once per batch on the hot path."""
        if not self._sink_ok:
            self._sink_ok = self.sink.ping()
        return self._sink_ok

    def _prepare(self) -> _Prepared | None:
        """Pull and compute a batch; the in-memory state moves on optimistically (a failed
        write resets it, to be rebuilt from InfluxDB)."""
        if self.state is None:
            self.state = self.load_state()
        msgs = self.transport.pull_batch(
            self.subscription, self.batch_size, consumer=self.consumer_id
        )
        if not msgs:
            return None
        with self.handing_back_on_error(msgs):
            readings, rejected = self.decoder.decode(msgs.data)
            a = self._apply(readings)
            prep = _Prepared(msgs, a.lines, a.readings, [*rejected, *a.stale])
            if self.drift is not None and len(a.readings):
                # after the readings, in the same write: acked only when both are durable
                d = self.drift.lines(a.readings, a.phase_cv, a.batch_cv)
                prep.lines = [*prep.lines, *d.chunks]
                prep.drift_points, prep.drift_alarms = d.points, d.alarms
            if self.mspc is not None and len(a.readings):
                m = self.mspc.lines(a.readings, a.phase_cv, a.batch_cv)
                prep.lines = [*prep.lines, *m.chunks]
                prep.mspc_points, prep.mspc_alarms = m.points, m.alarms
        self.state = a.state
        return prep

    def _release(self, preps: list[_Prepared]) -> BridgeReport:
        """InfluxDB stayed down: hand the batches back unacknowledged; nothing was lost."""
        for p in preps:
            self.transport.nack(self.subscription, p.msgs.ack_ids)
        self.state = None
        return BridgeReport(sink_down=True)

    def _settle(self, prep: _Prepared, refused: list[tuple[int, str]]) -> BridgeReport:
        """After InfluxDB accepted the batch: dead-letter what was rejected, then ack all."""
        rejected = list(prep.rejected)
        # drift lines follow the readings; one InfluxDB refused is not a reading's fault
        refused = [(i, e) for i, e in refused if i < len(prep.applied)]
        if refused:
            # Lines InfluxDB itself refused (isolated by bisection) are dead-lettered; the
            # rest were written. State is re-read, as it no longer follows from `applied`.
            rejected.extend(
                Rejection(int(prep.applied.index[i]), "sink_rejected", err) for i, err in refused
            )
        self._dead_letter(prep.msgs, rejected)
        self.transport.ack(self.subscription, prep.msgs.ack_ids)
        done = time.time_ns()
        applied = prep.applied
        rep = BridgeReport(
            pulled=len(prep.msgs),
            written=len(applied) - len(refused),
            resync=bool(refused),
            drift_points=prep.drift_points,
            drift_alarms=prep.drift_alarms,
            mspc_points=prep.mspc_points,
            mspc_alarms=prep.mspc_alarms,
        )
        rep.dead_lettered.update(r.reason for r in rejected)
        rep.lag_s = ((done - applied.ts_ns) / 1e9).tolist()
        rep.units = set(applied.unit_id)
        return rep

    def _apply(self, readings: Readings) -> _Applied:
        """Integrate CV per unit and batch: the line-protocol chunks, the state after them,
        the rows applied (in write order) with their CVs, and the stale rows rejected."""
        assert self.state is not None
        new_state = {u: UnitState(s.seq, s.ts_ns, s.batch_id, s.cv) for u, s in self.state.items()}
        if not len(readings):
            return _Applied([], new_state, readings, [], np.empty(0), np.empty(0))
        r = readings.sorted_by_unit_seq()
        keep = np.ones(len(r), dtype=bool)
        stale: list[Rejection] = []
        for a, b in r.runs("unit_id"):
            st = new_state.setdefault(r.unit_id[a], UnitState())
            for row, reason, detail in split_stale(r.seq[a:b], r.ts_ns[a:b], st.seq, st.ts_ns):
                keep[a + row] = False
                stale.append(Rejection(int(r.index[a + row]), reason, detail))
        if not keep.all():
            r = r.take(np.flatnonzero(keep))
        strays = self._strays(r, new_state)
        if strays:
            stale.extend(
                Rejection(
                    int(r.index[i]),
                    "stray_batch",
                    f"batch {r.batch_id[i]!r} is not {r.unit_id[i]}'s running batch"
                    f" {new_state[r.unit_id[i]].batch_id!r} and shows no start",
                )
                for i in strays
            )
            r = r.take(np.setdiff1d(np.arange(len(r)), strays))
        n = len(r)
        volume = np.empty(n)
        batch_cv = np.empty(n)
        phase_cv = np.empty(n)
        for a, b in r.runs("unit_id", "batch_id"):
            unit_id, batch_id = r.unit_id[a], r.batch_id[a]
            unit = self.md.units[unit_id]
            st = new_state[unit_id]
            res = integrate(
                r.ts_ns[a:b],
                r.signals["flow_lpm"][a:b],
                r.phase[a:b],
                column_volume_l=unit.column_volume_l,
                deadband_lpm=unit.flow_deadband_lpm,
                # a new batch starts its integral at zero
                state=st.cv if st.batch_id == batch_id else None,
            )
            volume[a:b], batch_cv[a:b], phase_cv[a:b] = res.volume_l, res.batch_cv, res.phase_cv
            new_state[unit_id] = UnitState(
                int(r.seq[b - 1]), int(r.ts_ns[b - 1]), batch_id, res.state
            )
        chunks = []
        for a in range(0, n, WRITE_CHUNK):
            sl = slice(a, min(n, a + WRITE_CHUNK))
            chunks.append(
                line_protocol(
                    INFLUX_MEASUREMENT,
                    {
                        "unit_id": r.unit_id[sl],
                        "batch_id": r.batch_id[sl],
                        "recipe": r.recipe[sl],
                        "phase": r.phase[sl],
                    },
                    {
                        **{s: r.signals[s][sl] for s in SIGNALS},
                        "batch_cv": batch_cv[sl],
                        "phase_cv": phase_cv[sl],
                        "volume_l": volume[sl],
                        "seq": r.seq[sl],
                    },
                    r.ts_ns[sl],
                )
            )
        return _Applied(chunks, new_state, r, stale, phase_cv, batch_cv)

    def _strays(self, r: Readings, state: dict[str, UnitState]) -> list[int]:
        """Rows (of `r`, sorted by unit and seq) of a batch that may not start yet: see
        NEW_BATCH_PERSISTENCE. The running batch is the one in `state`; a change is taken
        on its evidence only if the running batch does not resume later in the same pull."""
        runs = r.runs("unit_id", "batch_id")
        out: list[int] = []
        current: str | None = None
        for k, (a, b) in enumerate(runs):
            unit, batch = r.unit_id[a], r.batch_id[a]
            if k == 0 or unit != r.unit_id[runs[k - 1][0]]:
                st = state.get(unit)
                current = st.batch_id if st is not None else None
            if current is None or batch == current:
                current = batch
                self._candidates.pop(unit, None)
                continue
            cand, seen = self._candidates.get(unit, (batch, 0))
            prior = seen if cand == batch else 0
            resumes = any(
                r.unit_id[x] == unit and r.batch_id[x] == current for x, _ in runs[k + 1 :]
            )
            # readings of it still to refuse before it counts as started (none if it starts
            # in its recipe's first phase)
            refuse = (
                0
                if r.phase[a] == self._first_phase.get(r.recipe[a])
                else max(0, NEW_BATCH_PERSISTENCE - 1 - prior)
            )
            if not resumes and refuse < b - a:
                out.extend(range(a, a + refuse))
                current = batch
                self._candidates.pop(unit, None)
                continue
            self._candidates[unit] = (batch, 0 if resumes else prior + (b - a))
            out.extend(range(a, b))
        return out

    # -- health ---------------------------------------------------------------------------

    def health_lines(self, rep: BridgeReport, now_ns: int) -> bytes:
        """`bridge_health` for what `rep` covers and `live_status` for every known unit."""
        s = rep.summary()
        held, held_bytes = self._dead_letters_held()
        health = line_protocol(
            HEALTH_MEASUREMENT,
            {"subscription": [self.subscription]},
            {
                "pulled": np.array([rep.pulled]),
                "points_written": np.array([rep.written]),
                "dead_lettered": np.array([s["dead_lettered"]]),
                "drift_alarms": np.array([rep.drift_alarms]),
                "lag_p50_s": np.array([s["lag_p50_s"] or 0.0]),
                "lag_max_s": np.array([s["lag_max_s"] or 0.0]),
                # what the dead-letter audit holds (-1: the transport cannot say; Pub/Sub's
                # is Cloud Monitoring's num_undelivered_messages)
                "dead_letters_held": np.array([held]),
                "dead_letter_bytes": np.array([held_bytes]),
            },
            np.array([now_ns], dtype=np.int64),
        )
        units = sorted(u for u, st in (self.state or {}).items() if st.cv is not None)
        if not units:
            return health
        states = [(self.state or {})[u] for u in units]
        cv_l = np.array([self.md.units[u].column_volume_l for u in units])
        status = line_protocol(
            STATUS_MEASUREMENT,
            {"unit_id": units, "batch_id": [st.batch_id or "" for st in states]},
            {
                "age_s": np.array([(now_ns - st.ts_ns) / 1e9 for st in states]),
                "running": np.array(
                    [int(st.cv.phase not in self._final_phases) for st in states if st.cv]
                ),
                "batch_cv": np.array([st.cv.volume_l for st in states if st.cv]) / cv_l,
            },
            np.full(len(units), now_ns, dtype=np.int64),
        )
        return health + status

    def _dead_letters_held(self) -> tuple[int, int]:
        """(messages, bytes) the dead-letter audit holds, after dropping what is past its
        retention: the local queue's housekeeping rides on the health report, which the
        sensor and `serve` both run."""
        expire = getattr(self.transport, "expire", None)
        held = getattr(self.transport, "held", None)
        if expire is None or held is None:
            return -1, -1
        try:
            expire()
            n, size = held(DEAD_LETTER_SUBSCRIPTION)
            return int(n), int(size)
        except Exception:  # best effort, like the rest of the health report
            return -1, -1

    def report_health(self, rep: BridgeReport) -> bool:
        """Write the health points; best effort (they describe the data, they are not data),
        so a failure here never holds up or fails a batch."""
        try:
            if self.state is None:
                self.state = self.load_state()
            self.sink.write(self.health_lines(rep, time.time_ns()))
        except (SinkUnavailable, SinkRejected, InfluxError, OSError):
            return False
        return True

    # -- the two ways to run ------------------------------------------------------------

    def drain(
        self,
        max_messages: int,
        max_seconds: float,
        *,
        health: bool = True,
        retry_writes: bool = False,
    ) -> BridgeReport:
        """Bounded work for a Dagster sensor tick: stop pulling after max_messages or
        max_seconds. A write InfluxDB does not take is retried until max_seconds, then the
        batches are handed back; with `retry_writes` it is retried until InfluxDB takes it
        (what `serve` wants: a write whose answer was lost is written again, never
        redelivered as a duplicate). `health` writes the health points for the work done.

        Pipelined: while InfluxDB writes batch N (a worker thread; the socket wait releases
        the GIL), this thread pulls and computes batch N+1 (the queue lets a consumer pull
        the next messages of keys it holds). Acks stay in order and after each write."""
        total = BridgeReport()
        t_end = time.monotonic() + max_seconds
        if not self._sink_ready():
            total.sink_down = True
            total.outage = f"InfluxDB at {getattr(self.sink, 'url', '?')} does not answer"
            return total
        outage: str | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="influx-write") as pool:
            inflight: tuple[_Prepared, Future[BridgeReport]] | None = None
            pulled = 0
            while True:
                prep = None
                if pulled < max_messages and time.monotonic() < t_end and outage is None:
                    try:
                        prep = self._prepare()
                    except SinkUnavailable as e:
                        # rebuilding the state from InfluxDB failed (down, or credentials
                        # refused) before anything was pulled: nothing to hand back
                        outage = str(e)
                    pulled += len(prep.msgs) if prep else 0
                if inflight is not None:
                    done_prep, fut = inflight
                    inflight = None
                    try:
                        settled = fut.result()
                    except SinkStillDown as e:
                        total.merge(self._release([done_prep, *([prep] if prep else [])]))
                        outage = str(e) or outage
                        break
                    total.merge(settled)
                    if settled.resync:
                        # the next batch was computed from a state InfluxDB did not take:
                        # hand it back and rebuild the state from what InfluxDB holds
                        if prep is not None:
                            self.transport.nack(self.subscription, prep.msgs.ack_ids)
                            prep = None
                        self.state = None
                        continue
                if prep is None:
                    break
                write_deadline = None if retry_writes else t_end
                inflight = (prep, pool.submit(self._write_and_settle, prep, write_deadline))
        if outage is not None:
            self._sink_ok = False
            total.sink_down = True
            total.outage = outage
        if health:
            self.report_health(total)
        return total

    def _write_and_settle(self, prep: _Prepared, deadline: float | None) -> BridgeReport:
        # On the writer thread: the HTTP wait and SQLite's statement execution both release
        # the GIL, so this overlaps with the next batch's pull and decode.
        return self._settle(prep, self._write(prep, deadline))

    def _write(self, prep: _Prepared, deadline: float | None) -> list[tuple[int, str]]:
        """Write a batch's lines; while InfluxDB is down, keep its messages leased and retry
        until `deadline`. Returns (line, error) of lines InfluxDB refused."""
        ack_ids = prep.msgs.ack_ids
        leased_until = time.monotonic() + self.lease_s

        def waiting(_: float) -> None:
            nonlocal leased_until
            self._sink_ok = False
            now = time.monotonic()
            if leased_until - now < self.lease_s / 2:
                self.transport.extend(self.subscription, ack_ids, self.lease_s)
                leased_until = now + self.lease_s

        refused = write_retrying(
            self.sink,
            prep.lines,
            deadline=deadline,
            sleep=self.sleep,
            waiting=waiting,
            holding=f"{len(ack_ids)} messages leased",
        )
        self._sink_ok = True
        return refused

    def serve(
        self,
        stop: Callable[[], bool],
        idle_sleep_s: float = 0.05,
        on_report: Callable[[BridgeReport], None] | None = None,
    ) -> BridgeReport:
        """Run until `stop()` is true: the long-running `chrom-bridge` loop. Each round is a
        pipelined `drain` that pulls for at most SERVE_ROUND_S, so a backlog (after an
        outage, say) drains as fast as the sensor's does and `stop()` is checked every
        round; at the live rate a round is one small batch, so latency stays that of a
        single write. A batch whose write fails is retried until InfluxDB takes it, with
        its leases extended, as a long-running process can afford."""
        total = BridgeReport()
        since_health = BridgeReport()
        next_health = time.monotonic()
        backoff = 0.5
        down_since: float | None = None
        outage: str | None = None
        while not stop():
            self.follow_master_data()
            rep = self.drain(10**9, SERVE_ROUND_S, health=False, retry_writes=True)
            total.merge(rep)
            since_health.merge(rep)
            if rep.sink_down and (down_since is None or rep.outage != outage):
                down_since = down_since or time.monotonic()
                outage = rep.outage
                log.warning(
                    "InfluxDB is down (%s): holding the queue, nothing acknowledged or "
                    "dead-lettered; retrying",
                    outage or "no answer",
                )
            elif not rep.sink_down and down_since is not None:
                log.info("InfluxDB is back after %.1f s down", time.monotonic() - down_since)
                down_since = outage = None
            if rep.pulled:
                log.debug("live bridge: %s", rep.summary())
            if rep.dead_lettered:
                log.info(
                    "live bridge dead-lettered %d messages: %s",
                    sum(rep.dead_lettered.values()),
                    dict(rep.dead_lettered),
                )
            if not rep.sink_down and time.monotonic() >= next_health:
                self.report_health(since_health)
                since_health = BridgeReport()
                next_health = time.monotonic() + HEALTH_EVERY_S
            if on_report is not None and (rep.pulled or rep.sink_down):
                on_report(rep)
            if rep.sink_down:
                self.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if rep.pulled == 0:
                self.sleep(idle_sleep_s)
        return total
