"""The chrom.reading.v1 decoder: every kind of bad input gets a specific reason, never an
exception, and never costs the good messages next to it (plus a hypothesis fuzz)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chrom_platform.lib.core.contracts import READING_KEYS, SIGNALS
from chrom_platform.lib.io.transport.base import JoinedPayloads
from chrom_platform.lib.streaming import readings as readings_module
from chrom_platform.lib.streaming.readings import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    TS_MAX_NS,
    ReadingDecoder,
    json_depth,
    split_stale,
)

GOOD = {
    "schema": "chrom.reading.v1",
    "unit_id": "SKID-01",
    "batch_id": "SKID-01-B00001",
    "recipe": "MAB1-PROA-V3",
    "phase": "Load",
    "ts": "2026-03-02T06:00:00.137Z",
    "seq": 194594400,
    "flow_lpm": 37.7,
    "pressure_bar": 1.2,
    "uv_mau": 1500.25,
    "cond_ms_cm": 15.5,
    "ph": 7.1,
}


def msg(**changes: object) -> bytes:
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not DROP}).encode()


DROP = object()
#: the receiving clock bound for tests that call the decoder's internals
LATEST = TS_MAX_NS


def _nested_extra(depth: int) -> bytes:
    """A valid reading with one extra field nested `depth` deep (built as text: the stdlib
    encoder itself recurses)."""
    return msg()[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


INJECTION = 'B\'; DROP MEASUREMENT "chromatography"; --'

BAD: list[tuple[str, bytes, str]] = [
    ("truncated json", b'{"unit_id": "SKID-01", ', "malformed_json"),
    ("not utf-8", b"\xff\xfe\x00", "malformed_json"),
    ("array", b"[1, 2, 3]", "not_an_object"),
    ("string", b'"hello"', "not_an_object"),
    ("other schema", msg(schema="chrom.reading.v2"), "unknown_schema"),
    ("missing ph", msg(ph=DROP), "missing_field"),
    ("missing ts and seq", msg(ts=DROP, seq=DROP), "missing_field"),
    ("seq as string", msg(seq="194594400"), "wrong_type"),
    ("seq as float", msg(seq=1.5), "wrong_type"),
    ("flow as string", msg(flow_lpm="37.7"), "wrong_type"),
    ("flow as bool", msg(flow_lpm=True), "wrong_type"),
    ("flow null", msg(flow_lpm=None), "wrong_type"),
    ("unit as number", msg(unit_id=5), "wrong_type"),
    ("ts as float", msg(ts=1.5e18), "wrong_type"),
    ("empty unit", msg(unit_id=""), "bad_value"),
    ("unit with newline", msg(unit_id="SKID-01\nx"), "bad_value"),
    ("ts not a date", msg(ts="yesterday"), "bad_timestamp"),
    ("ts without zone", msg(ts="2026-03-02T06:00:00"), "bad_timestamp"),
    ("ts in 1970", msg(ts=0), "bad_timestamp"),
    ("NaN", msg(ph=math.nan), "non_finite"),
    ("Infinity", msg(uv_mau=math.inf), "non_finite"),
    ("-Infinity", msg(pressure_bar=-math.inf), "non_finite"),
    ("pH 22", msg(ph=22.0), "out_of_range"),
    ("negative seq", msg(seq=-1), "out_of_range"),
    ("huge seq", msg(seq=2**70), "out_of_range"),
    ("huge int flow", msg(flow_lpm=10**400), "out_of_range"),
    ("unknown unit", msg(unit_id="SKID-99"), "unknown_unit"),
    ("unknown recipe", msg(recipe="NOPE"), "unknown_recipe"),
    ("unknown phase", msg(phase="Dance"), "unknown_phase"),
    ("oversized", msg(note="x" * (MAX_MESSAGE_BYTES + 1)), "oversized"),
    # hostile input (issue 18): each once crashed a consumer or poisoned a unit
    ("[ 5,000 deep", b"[" * 5000, "nested_too_deep"),
    ("extra field 1,000 deep", _nested_extra(1000), "nested_too_deep"),
    ("dated 2099", msg(ts="2099-12-31T00:00:00.000Z"), "implausible_time"),
    ("InfluxQL injection in batch_id", msg(batch_id=INJECTION), "bad_value"),
    ("quote in phase", msg(phase="Load'"), "bad_value"),
    ("slash in unit", msg(unit_id="SKID/01"), "bad_value"),
    ("semicolon in recipe", msg(recipe="MAB1;x"), "bad_value"),
    ("leading space", msg(batch_id=" B1"), "bad_value"),
]


@pytest.fixture(scope="module")
def decoder(md) -> ReadingDecoder:
    return ReadingDecoder(md)


@pytest.mark.parametrize(("case", "payload", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_message_gets_a_specific_reason_and_good_neighbours_survive(
    decoder, case, payload, reason
):
    good_before, good_after = msg(seq=1), msg(seq=3)
    readings, rejected = decoder.decode([good_before, payload, good_after])
    assert [(r.index, r.reason) for r in rejected] == [(1, reason)], case
    assert rejected[0].detail  # says what was wrong, not just the category
    assert readings.seq.tolist() == [1, 3]
    assert readings.index.tolist() == [0, 2]


def test_field_names_appear_in_details(decoder):
    _, rej = decoder.decode([msg(ph=DROP), msg(ph=22.0), msg(flow_lpm="x")])
    assert "ph" in rej[0].detail
    assert "ph=22.0" in rej[1].detail
    assert "flow_lpm" in rej[2].detail


def test_extra_fields_are_kept_not_fatal(decoder):
    readings, rejected = decoder.decode([msg(operator="jdoe", shift=2)])
    assert rejected == []
    assert json.loads(readings.extra[0]) == {"operator": "jdoe", "shift": 2}
    table = readings.to_arrow()
    assert json.loads(table.column("extra")[0].as_py())["operator"] == "jdoe"


def test_epoch_ns_timestamps_and_missing_schema_are_accepted(decoder):
    readings, rejected = decoder.decode([msg(ts=1_772_431_200_137_000_000, schema=DROP)])
    assert rejected == []
    assert readings.ts_ns.tolist() == [1_772_431_200_137_000_000]


def test_values_decode_exactly(decoder):
    readings, _ = decoder.decode([msg()])
    for s in SIGNALS:
        assert readings.signals[s][0] == GOOD[s]
    assert readings.ts_ns[0] == 1_772_431_200_137_000_000


# -- fuzz --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def _partition_holds(decoder: ReadingDecoder, payloads: list[bytes]) -> None:
    readings, rejected = decoder.decode(payloads)
    seen = sorted([*readings.index.tolist(), *(r.index for r in rejected)])
    assert seen == list(range(len(payloads)))  # every message is good or rejected, once
    for s in SIGNALS:
        assert all(math.isfinite(v) for v in readings.signals[s].tolist())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=5))
def test_fuzz_arbitrary_bytes(decoder, payloads):
    _partition_holds(decoder, payloads)


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from([*READING_KEYS, *SIGNALS, "schema", "extra_field"]),
    value=json_values,
)
def test_fuzz_one_field_replaced(decoder, field, value):
    payload = json.dumps({**GOOD, field: value}).encode()
    readings, rejected = decoder.decode([payload])
    assert len(readings) + len(rejected) == 1
    if rejected:
        assert rejected[0].reason
    elif field in SIGNALS:
        assert readings.signals[field][0] == float(value)  # accepted means taken as sent


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=14))
def test_fuzz_arbitrary_objects(decoder, obj):
    _partition_holds(decoder, [json.dumps(obj).encode()])


def _canonical(readings, rejected):
    order = np.argsort(readings.index)
    rows = [
        (
            int(readings.index[i]),
            readings.unit_id[i],
            readings.batch_id[i],
            readings.phase[i],
            int(readings.ts_ns[i]),
            int(readings.seq[i]),
            *(float(readings.signals[s][i]) for s in SIGNALS),
            readings.extra[i],
        )
        for i in order
    ]
    return rows, sorted((r.index, r.reason, r.detail) for r in rejected)


def test_fast_path_takes_clean_batches_whole(decoder):
    payloads = [msg(seq=i, ts=f"2026-03-02T06:00:0{i}.500Z") for i in range(5)]
    fast = decoder._decode_fast(payloads, LATEST)
    assert fast is not None
    good, suspects = fast
    assert suspects == []
    assert _canonical(good, []) == _canonical(*decoder._decode_slow(payloads, LATEST))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*READING_KEYS, *SIGNALS, "schema", "extra_field", None]),
            json_values,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_fuzz_fast_and_slow_paths_agree(decoder, changes):
    """The vectorized path and the message-by-message path give the same answer."""
    payloads = [
        GOOD_BYTES if field is None else json.dumps({**GOOD, field: value}).encode()
        for field, value in changes
    ]
    assert _canonical(*decoder.decode(payloads)) == _canonical(
        *decoder._decode_slow(payloads, LATEST)
    )


GOOD_BYTES = msg()


def _joined(payloads: list[bytes]) -> JoinedPayloads:
    """The payloads as the local queue hands them out: one newline-joined buffer."""
    return JoinedPayloads(b"\n".join(payloads), np.array([len(p) for p in payloads]))


def test_payloads_joined_by_the_queue_decode_as_a_list_does(decoder):
    """The local queue's newline-joined buffer is read whole by the fast path; a payload
    that itself holds a newline, an empty one or an oversized one is still delimited by
    the lengths and gets the same verdict as from a list."""
    payloads = [msg(seq=1), *(b[1] for b in BAD), b"", b'{"unit_id":\n"SKID-01"}', msg(seq=2)]
    joined = _joined(payloads)
    assert list(joined) == payloads
    assert joined[-1] == payloads[-1]
    assert joined[2:4] == payloads[2:4]
    # One receiving clock for both: the implausible-time reason names the seconds ahead.
    now_ns = time.time_ns()
    assert _canonical(*decoder.decode(joined, now_ns=now_ns)) == _canonical(
        *decoder.decode(payloads, now_ns=now_ns)
    )
    clean = [msg(seq=i, ts=f"2026-03-02T06:00:0{i}.500Z") for i in range(5)]
    fast = decoder._decode_fast(_joined(clean), LATEST)
    assert fast is not None
    assert fast[1] == []
    assert _canonical(fast[0], []) == _canonical(*decoder._decode_slow(clean, LATEST))


def test_nesting_within_the_bound_is_kept_as_extra(decoder):
    readings, rejected = decoder.decode([_nested_extra(MAX_JSON_DEPTH - 1)])
    assert rejected == []
    assert json.loads(readings.extra[0])["x"] is not None


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside strings do not nest
        (b'{"a": "x\\\\"}', 1),  # an escaped backslash closes the string
        (b'{"a": "\\"[[["}', 1),  # an escaped quote does not
        (b"[" * 5000, 5000),
    ],
)
def test_json_depth(text, depth):
    assert json_depth(text) == depth


def test_an_exception_in_one_message_costs_only_that_message(decoder, monkeypatch):
    real = readings_module.iso_to_ns

    def explode(ts: str) -> int:
        if ts.startswith("2026-03-02T06:00:01"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(ts)

    monkeypatch.setattr(readings_module, "iso_to_ns", explode)
    payloads = [msg(seq=1), msg(seq=2, ts="2026-03-02T06:00:01.000Z", note=[1]), msg(seq=3)]
    readings, rejected = decoder.decode(payloads)
    assert readings.seq.tolist() == [1, 3]
    assert [(r.index, r.reason) for r in rejected] == [(1, "decode_error")]
    assert "RecursionError" in rejected[0].detail


def test_time_ahead_of_the_receiving_clock_is_judged_against_that_clock(decoder):
    ts_ns = 1_772_431_200_000_000_000  # 2026-03-02T06:00:00Z
    payload = msg(ts=ts_ns)
    # 4 minutes ahead of the receiver: inside the 5-minute tolerance
    readings, rejected = decoder.decode([payload], now_ns=ts_ns - 240 * 10**9)
    assert len(readings) == 1
    assert rejected == []
    # 6 minutes ahead: a clock fault, on the fast path and the message-by-message path
    for batch in ([payload], [payload, msg(flow_lpm="x")]):
        readings, rejected = decoder.decode(batch, now_ns=ts_ns - 360 * 10**9)
        assert rejected[0].reason == "implausible_time"
        assert "360 s ahead" in rejected[0].detail


S = 10**9


@pytest.mark.parametrize(
    ("seq", "ts_s", "state", "want"),
    [
        # the usual case: one scan a second after the state
        ([101, 102, 103], [11, 12, 13], (100, 10), []),
        ([100, 101], [10, 11], (100, 10), [(0, "duplicate")]),
        ([101], [9], (100, 10), [(0, "out_of_order")]),
        # seq 10^15 a second after seq 100: the counter jumped; later readings still apply
        ([101, 10**15], [11, 12], (100, 10), [(1, "implausible_seq")]),
        # a long gap explains a long jump (the unit was off: its clock kept counting)
        ([3700], [3610], (100, 10), []),
        # no state yet: the batch's own median row is the reference, up and down
        ([5, 101, 102, 103], [10, 11, 12, 13], (-1, -1), [(0, "implausible_seq")]),
        ([101, 102, 103, 10**15], [11, 12, 13, 14], (-1, -1), [(3, "implausible_seq")]),
    ],
)
def test_split_stale(seq, ts_s, state, want):
    got = split_stale(
        np.array(seq, dtype=np.int64),
        np.array(ts_s, dtype=np.int64) * S,
        state[0],
        state[1] * S if state[1] >= 0 else -1,
    )
    assert [(r, reason) for r, reason, _ in got] == want
