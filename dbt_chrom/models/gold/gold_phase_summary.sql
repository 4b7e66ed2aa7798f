{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='batch_id',
) }}

-- Per batch and phase: start and end from the batch record, duration, where the phase sits
-- in CV, its volume, time held, readings received versus expected at 1 Hz, and signal
-- statistics. Incremental per batch, following gold_trend_by_cv.
{%- set signals = chrom.signals() %}

with

gold_trend_by_cv as (
    select * from {{ ref('gold_trend_by_cv') }}
    {%- if is_incremental() %}
    where {{ chrom.rebuilt_since_last_run() }}
    {%- endif %}
),

silver_phases as (
    select * from {{ ref('silver_phases') }}
),

silver_holds as (
    select * from {{ ref('silver_holds') }}
),

silver_units as (
    select * from {{ ref('silver_units') }}
),

phase_readings as (
    select
        batch_id,
        phase,
        min(unit_id) as unit_id,
        min(recipe) as recipe,
        count(*) as n_readings,
        min(batch_cv) as start_cv,
        max(batch_cv) as end_cv,
        max(volume_l) - min(volume_l) as volume_l,
        {%- for s in signals %}
            avg({{ s }}) as {{ s }}_mean,
            min({{ s }}) as {{ s }}_min,
            max({{ s }}) as {{ s }}_max,
            stddev_samp({{ s }}) as {{ s }}_std,
        {%- endfor %}
        max(_source_loaded_at) as _source_loaded_at
    from gold_trend_by_cv
    group by batch_id, phase
),

-- Holds are inclusive intervals of 1 Hz scans: a hold from its first to its last held scan
-- lasted (end - start) + 1 s.
phase_holds as (
    select
        batch_id,
        phase,
        sum(duration_s + 1) as hold_s
    from silver_holds
    where ended_at is not null
    group by batch_id, phase
)

select
    {{ chrom.surrogate_key(['phase_readings.batch_id', 'phase_readings.phase']) }} as batch_phase_id,
    phase_readings.batch_id,
    phase_readings.unit_id,
    phase_readings.recipe,
    phase_readings.phase,
    silver_phases.phase_order,
    silver_phases.started_at,
    silver_phases.ended_at,
    {{ chrom.seconds_between('silver_phases.started_at', 'silver_phases.ended_at') }} + 1
        as duration_s,
    phase_readings.start_cv,
    phase_readings.end_cv,
    phase_readings.volume_l / silver_units.column_volume_l as cv,
    phase_readings.volume_l,
    coalesce(phase_holds.hold_s, 0) as hold_s,
    phase_readings.n_readings,
    {{ chrom.seconds_between('silver_phases.started_at', 'silver_phases.ended_at') }} + 1
    - phase_readings.n_readings as missing_readings,
    {%- for s in signals %}
        phase_readings.{{ s }}_mean,
        phase_readings.{{ s }}_min,
        phase_readings.{{ s }}_max,
        phase_readings.{{ s }}_std,
    {%- endfor %}
    phase_readings._source_loaded_at
from phase_readings
inner join silver_units on phase_readings.unit_id = silver_units.unit_id
left join silver_phases
    on phase_readings.batch_id = silver_phases.batch_id
        and phase_readings.phase = silver_phases.phase
left join phase_holds
    on phase_readings.batch_id = phase_holds.batch_id
        and phase_readings.phase = phase_holds.phase
