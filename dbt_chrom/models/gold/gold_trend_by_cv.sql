{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='batch_id',
) }}

-- Every valid reading with its batch, phase (from the batch record's events), hold flag and
-- totalized volume: `volume_l`, `batch_cv`, `phase_cv`. The integration rule is the one of
-- chrom_platform/lib/core/cv.py that the simulator and the live bridge use: trapezoid on flow
-- between consecutive readings of a batch, flow below the unit's dead band counts as zero
-- (holds do not advance CV), column volume from equipment master data.
--
-- Incremental per batch: a run rebuilds only the batches with anything of theirs loaded
-- since the last run (readings, events, lab results: a running batch is rebuilt whole, ~15k
-- rows), so a new batch costs that batch's work, not the history's. This is the root of the
-- per-batch chain: the gold models and the analytics downstream rebuild what this one
-- stamps anew, so a lab result that lands days after its batch re-judges it (its yield,
-- alerts and verdict), and a new master data snapshot, which silver reads for every batch,
-- rebuilds them all: incremental runs converge to what a full rebuild of the landing gives.
{%- set signals = chrom.signals() %}
{%- set rebuild_all = is_incremental() and chrom.master_data_loaded_since(this) %}

with

silver_readings as (
    select * from {{ ref('silver_readings') }}
),

silver_batch_events as (
    select * from {{ ref('silver_batch_events') }}
    where reject_reason is null
),

silver_units as (
    select * from {{ ref('silver_units') }}
),

-- per batch, when its lab results last landed (a few rows a batch)
labs_loaded as (
    select
        batch_id,
        max(_loaded_at) as loaded_at
    from {{ ref('silver_sample_results') }}
    group by batch_id
),

master_data_loaded as (
    select max(_loaded_at) as loaded_at from {{ ref('bronze_master_data') }}
),

{%- if is_incremental() and not rebuild_all %}

-- The readings' load times read on their own: DuckDB materializes a CTE that two others
-- read, and `silver_readings` read twice would copy the whole history (15M rows at 1,000
-- batches, 1.4 s) to find one new batch.
silver_reading_loads as (
    select batch_id, _loaded_at from {{ ref('silver_readings') }}
),

watermark as (
    select {{ chrom.last_run_watermark('_source_loaded_at') }} as loaded_at
),

changed_batches as (
    select distinct batch_id from silver_reading_loads
    where _loaded_at > (select loaded_at from watermark)
    union
    select distinct batch_id from silver_batch_events
    where _loaded_at > (select loaded_at from watermark)
    union
    select batch_id from labs_loaded
    where loaded_at > (select loaded_at from watermark)
),

{%- endif %}

readings as (
    select * from silver_readings
    {%- if is_incremental() and not rebuild_all %}
    where batch_id in (select batch_id from changed_batches)
    {%- endif %}
),

events as (
    select * from silver_batch_events
    {%- if is_incremental() and not rebuild_all %}
    where batch_id in (select batch_id from changed_batches)
    {%- endif %}
),

events_loaded as (
    select
        batch_id,
        max(_loaded_at) as loaded_at
    from events
    group by batch_id
),

-- Events as markers merged into each batch's reading stream. At equal timestamps a phase or
-- hold start comes before the reading and a hold end after it: both ends are inclusive, as
-- in the batch record (the first and last held readings carry the hold events' times).
stream as (
    select
        batch_id,
        ts,
        1 as sort_key,
        cast(null as varchar) as phase_marker,
        cast(null as integer) as hold_marker,
        true as is_reading
    from readings

    union all

    select
        batch_id,
        ts,
        case when event_type = 'hold_end' then 2 else 0 end as sort_key,
        case when event_type = 'phase_start' then phase end as phase_marker,
        case
            when event_type = 'hold_start' then 1
            when event_type = 'hold_end' then 0
        end as hold_marker,
        false as is_reading
    from events
    where event_type in ('phase_start', 'hold_start', 'hold_end')
),

marked as (
    select
        batch_id,
        ts,
        is_reading,
        last_value(phase_marker ignore nulls) over (
            partition by batch_id order by ts, sort_key
            rows between unbounded preceding and current row
        ) as event_phase,
        last_value(hold_marker ignore nulls) over (
            partition by batch_id order by ts, sort_key
            rows between unbounded preceding and current row
        ) as hold_state
    from stream
),

assigned as (
    select
        readings.*,
        -- a reading before any phase event of its batch (events not landed yet) keeps the
        -- phase the skid tagged it with
        coalesce(marked.event_phase, readings.phase) as assigned_phase,
        coalesce(marked.hold_state, 0) = 1 as is_hold,
        case
            when readings.flow_lpm < silver_units.flow_deadband_lpm then 0.0
            else readings.flow_lpm
        end as flow_effective_lpm,
        silver_units.column_volume_l
    from readings
    inner join marked
        on readings.batch_id = marked.batch_id and readings.ts = marked.ts and marked.is_reading
    inner join silver_units on readings.unit_id = silver_units.unit_id
),

increments as (
    select
        *,
        coalesce(
            0.5 * (flow_effective_lpm + lag(flow_effective_lpm) over (partition by batch_id order by ts))
            * {{ chrom.seconds_between('lag(ts) over (partition by batch_id order by ts)', 'ts') }}
            / 60.0,
            0.0
        ) as volume_increment_l
    from assigned
),

totalized as (
    select
        *,
        sum(volume_increment_l) over (
            partition by batch_id order by ts rows between unbounded preceding and current row
        ) as volume_l
    from increments
)

select
    totalized.unit_id,
    totalized.batch_id,
    totalized.recipe,
    totalized.assigned_phase as phase,
    totalized.ts,
    totalized.seq,
    {%- for s in signals %}
        totalized.{{ s }},
    {%- endfor %}
    totalized.is_hold,
    totalized.volume_l,
    totalized.volume_l / totalized.column_volume_l as batch_cv,
    (
        totalized.volume_l - first_value(totalized.volume_l) over (
            partition by totalized.batch_id, totalized.assigned_phase order by totalized.ts
            rows between unbounded preceding and current row
        )
    ) / totalized.column_volume_l as phase_cv,
    -- what this batch's rows were built from: the newest load of its readings, events, lab
    -- results, or of the master data
    greatest(
        max(totalized._loaded_at) over (partition by totalized.batch_id),
        coalesce(events_loaded.loaded_at, cast('1970-01-01' as timestamp)),
        coalesce(labs_loaded.loaded_at, cast('1970-01-01' as timestamp)),
        coalesce(master_data_loaded.loaded_at, cast('1970-01-01' as timestamp))
    ) as _source_loaded_at
from totalized
left join events_loaded on totalized.batch_id = events_loaded.batch_id
left join labs_loaded on totalized.batch_id = labs_loaded.batch_id
cross join master_data_loaded
