"""One finding on every batch (a recipe's step-yield range that does not fit the plant):
the platform says so once, still releases the batches into the envelope and judges drift."""

from __future__ import annotations

import dataclasses

import dagster as dg

from chrom_platform.defs.analytics.assets import DRIFT_CHECK, SYSTEMATIC_CHECK
from chrom_platform.lib.analytics.envelope import EnvelopeParams
from chrom_platform.lib.core.tables import GOLD_BATCH_ALARMS, GOLD_BATCH_DRIFT, GOLD_BATCH_VERDICT
from chrom_platform_tests.e2e.analytics_history import materialize
from chrom_platform_tests.warehouse_helpers import History

RECIPE = "MAB1-PROA-V3"  # what SKID-01 runs


def test_a_finding_on_every_batch_is_said_once_and_does_not_block_the_envelope(
    md, tmp_path
) -> None:
    # good batches yield about 0.9: a minimum of 0.99 flags every one of them
    strict = dataclasses.replace(md.recipes[RECIPE], step_yield_min=0.99)
    md_strict = dataclasses.replace(md, recipes={**md.recipes, RECIPE: strict})
    h = History(tmp_path, md_strict)
    n = EnvelopeParams().min_batches + 3
    h.land(units=1, batches_per_unit=n, seed=9, fault_rate=0.0)
    with dg.instance_for_test() as instance:
        result = materialize(h, instance)
    assert result.success
    with h.connect() as con:
        flagged = con.execute(
            f"select count(distinct batch_id) from {GOLD_BATCH_ALARMS} "
            "where signal = 'step_yield_low' and alarm_class = 'result'"
        ).fetchall()
        released = con.execute(
            f"select count(*) from {GOLD_BATCH_VERDICT} where released"
        ).fetchall()
        judged = con.execute(
            f"select count(distinct batch_id) from {GOLD_BATCH_DRIFT} "
            "where verdict <> 'no_envelope'"
        ).fetchall()
    assert flagged == [(n,)]  # every batch has the finding...
    assert released[0][0] >= EnvelopeParams().min_batches  # ...and they are released
    assert judged[0][0] >= 1  # so an envelope exists and judges
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    systematic = checks[SYSTEMATIC_CHECK]
    assert not systematic.passed
    assert systematic.severity == dg.AssetCheckSeverity.WARN
    assert f"result:step_yield_low on {n} of {n} batches of SKID-01 / {RECIPE}" in (
        systematic.description or ""
    )
    # the drift check judged the latest batch against a real envelope
    assert "cannot judge" not in (checks[DRIFT_CHECK].description or "")
