"""Opening the streaming parts from plain settings: one place that turns URLs and names into
a transport, an InfluxDB sink and the master data, used by the Dagster resources and the
`chrom-bridge` command alike."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chrom_platform.lib.analytics.envelope import EnvelopeParams
from chrom_platform.lib.analytics.live import EnvelopeSource, LiveEnvelope, LiveSource
from chrom_platform.lib.analytics.live_mspc import LiveModels, model_source
from chrom_platform.lib.core.master_data import MasterData, load_master_data
from chrom_platform.lib.io.influx import (
    Credentials,
    InfluxSink,
    InfluxV1Sink,
    InfluxV2Sink,
    SinkUnavailable,
)
from chrom_platform.lib.io.landing import LandedMasterData
from chrom_platform.lib.io.objectstore import ObjectStore, open_store
from chrom_platform.lib.io.transport import (
    Transport,
    ensure_readings_topology,
    open_transport,
    owns_topology,
)
from chrom_platform.lib.streaming.readings import MAX_AHEAD_S

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from chrom_platform.lib.streaming.bridge import LiveBridge
    from chrom_platform.lib.streaming.landing_consumer import LandingConsumer


@dataclass(frozen=True)
class StreamingConfig:
    transport_uri: str
    influx_url: str
    influx_database: str
    equipment_path: str
    recipes_path: str
    influx_token: str | None = None
    influx_org: str | None = None
    influx_username: str | None = None
    influx_password: str | None = None
    #: the object store the analytics export the golden envelope to (live drift); None: off
    envelope_uri: str | None = None
    #: create the topics and subscriptions on open (None: only for the local queue; see
    #: lib/io/transport/__init__.py, owns_topology)
    create_topology: bool | None = None
    #: a reading stamped further ahead of the receiving clock is dead-lettered
    max_ahead_s: float = MAX_AHEAD_S
    #: a running unit with no live point for this long fails the live freshness check
    live_stale_after_s: float = 120.0
    #: the landing zone whose newest master data snapshot the consumers judge with, the one
    #: the warehouse reads (lib/io/landing.py: LandedMasterData); None: the files above
    master_data_uri: str | None = None

    def transport(self) -> Transport:
        t = open_transport(self.transport_uri)
        create = self.create_topology
        if create if create is not None else owns_topology(self.transport_uri):
            ensure_readings_topology(t)
        return t

    def sink(self) -> InfluxSink:
        """v1 API (database) without a token; v2 API (bucket = database, org) with one."""
        if self.influx_token:
            if not self.influx_org:
                raise ValueError("CHROM_INFLUX_ORG is required with CHROM_INFLUX_TOKEN")
            return InfluxV2Sink(
                self.influx_url, self.influx_token, self.influx_org, self.influx_database
            )
        creds = (
            Credentials(self.influx_username, self.influx_password or "")
            if self.influx_username
            else None
        )
        sink = InfluxV1Sink(self.influx_url, self.influx_database, credentials=creds)
        try:
            sink.ensure_database()
        except (OSError, SinkUnavailable) as e:
            # down, or our credentials refused: the bridge holds its queue and retries, and
            # says why, rather than failing at start until someone fixes InfluxDB
            log.warning("InfluxDB not ready at start (%s): the bridge will retry", e)
        return sink

    def master_data(self) -> MasterData:
        """The configured files (`master_data_source` is what the consumers follow)."""
        return load_master_data(self.equipment_path, self.recipes_path)

    def master_data_source(
        self, files: Callable[[], MasterData] | None = None
    ) -> Callable[[], MasterData]:
        """Where the consumers take master data from, asked again as they work: the newest
        landed snapshot (what dbt reads), or the configured files without a landing zone.
        `files`: how the files are read (default: parsed when needed, then kept)."""
        if self.master_data_uri:
            return LandedMasterData(open_store(self.master_data_uri), files or self.master_data).get
        if files is not None:
            return files
        md = self.master_data()
        return lambda: md

    def envelope(self) -> LiveSource[LiveEnvelope] | None:
        if not self.envelope_uri:
            return None
        p = EnvelopeParams()
        return EnvelopeSource(open_store(self.envelope_uri), p.z_limit, p.bin_width_cv)

    def models(self) -> LiveSource[LiveModels] | None:
        """The multivariate models, from the store the envelope is exported to."""
        if not self.envelope_uri:
            return None
        return model_source(open_store(self.envelope_uri), EnvelopeParams().bin_width_cv)

    def bridge(self, **kwargs: Any) -> LiveBridge:
        """The live bridge on these settings (queue, InfluxDB, master data, envelope)."""
        from chrom_platform.lib.streaming.bridge import LiveBridge

        source = self.master_data_source()
        return LiveBridge(
            self.transport(),
            self.sink(),
            source(),
            envelope=self.envelope(),
            models=self.models(),
            max_ahead_s=self.max_ahead_s,
            master_data_source=source,
            **kwargs,
        )

    def lasting(self) -> LastingBridgeParts:
        """What bridges on these settings share for the life of the process (see
        LastingBridgeParts): one per settings, so a sensor's ticks find it again."""
        with _LASTING_GUARD:
            if self not in _LASTING:
                _LASTING[self] = LastingBridgeParts(self)
            return _LASTING[self]

    def landing_consumer(self, store: ObjectStore, **kwargs: Any) -> LandingConsumer:
        """The landing consumer on these settings (queue, master data, clock tolerance)."""
        from chrom_platform.lib.streaming.landing_consumer import LandingConsumer

        source = self.master_data_source()
        return LandingConsumer(
            self.transport(),
            store,
            source(),
            max_ahead_s=self.max_ahead_s,
            master_data_source=source,
            **kwargs,
        )


class LastingBridgeParts:
    """The parts of a live bridge that outlive one pass of work: the InfluxDB sink (its
    database ensured once), the envelope and model sources (re-read on their own refresh
    interval and etag, which a bridge built anew each time never reached) and the master
    data (parsed again only when one of its files changes). A Dagster sensor builds a bridge
    each tick from these: the queue and the units' positions are read fresh each tick, as
    another replica may have moved them."""

    def __init__(self, cfg: StreamingConfig) -> None:
        self.cfg = cfg
        self.sink = cfg.sink()
        self.envelope = cfg.envelope()
        self.models = cfg.models()
        self._md: MasterData | None = None
        self._md_stamp: tuple[tuple[int, int], ...] | None = None
        #: how often the configured files were parsed (what a test and the logs can see)
        self.master_data_loads = 0
        #: the newest landed snapshot (what the warehouse reads), else the files
        self.master_data = cfg.master_data_source(files=self._files)

    def _files(self) -> MasterData:
        """The configured files, parsed again only when one changes."""
        stamp = tuple(
            (st.st_mtime_ns, st.st_size)
            for st in map(os.stat, (self.cfg.equipment_path, self.cfg.recipes_path))
        )
        if self._md is None or stamp != self._md_stamp:
            self._md, self._md_stamp = self.cfg.master_data(), stamp
            self.master_data_loads += 1
        return self._md

    def bridge(self, **kwargs: Any) -> LiveBridge:
        from chrom_platform.lib.streaming.bridge import LiveBridge

        return LiveBridge(
            self.cfg.transport(),
            self.sink,
            self.master_data(),
            envelope=self.envelope,
            models=self.models,
            max_ahead_s=self.cfg.max_ahead_s,
            **kwargs,
        )


_LASTING: dict[StreamingConfig, LastingBridgeParts] = {}
_LASTING_GUARD = threading.Lock()
