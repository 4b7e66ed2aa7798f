{{ config(materialized='incremental', incremental_strategy='append') }}

-- Every landed reading once, typed, with the reason it is kept out of silver (null = valid).
-- Incremental: a run classifies only the readings loaded into bronze since the last run, and
-- looks for earlier copies only in the time range those readings cover. Only what the
-- reading itself decides is settled here: whether its unit is in master data is asked at
-- read time (silver_readings), since a unit's snapshot may land after its readings.
{%- set signals = chrom.signals() %}

with

bronze_readings as (
    select * from {{ ref('bronze_readings') }}
    {%- if is_incremental() %}
    where _loaded_at > {{ chrom.last_run_watermark('_loaded_at') }}
    {%- endif %}
),

signal_specs as (
    select * from {{ ref('signal_specs') }}
),

limits as (
    select
        {%- for s in signals %}
            max(case when signal = '{{ s }}' then valid_min end) as {{ s }}_min,
            max(case when signal = '{{ s }}' then valid_max end) as {{ s }}_max,
        {%- endfor %}
        count(*) as n_signals
    from signal_specs
),

{%- if is_incremental() %}

accepted_before as (
    select unit_id, ts, coalesce(_revision, 1) as _revision from {{ this }}
    where
        reject_reason is null
        and ts >= (select min(ts) from bronze_readings)
        and ts <= (select max(ts) from bronze_readings)
),
{%- endif %}

revisioned as (
    select
        *,
        {{ chrom.landing_revision('_source_file') }} as _revision
    from bronze_readings
),

-- A copy is a reading of the same unit and time in the same batch revision: a corrected
-- re-import (a later revision) is not a duplicate of what it corrects. Which revision
-- counts is silver_readings' choice, made at read time, so it does not depend on whether
-- the correction's events or its readings are loaded first.
ranked as (
    select
        revisioned.*,
        row_number() over (
            partition by unit_id, ts, _revision order by _source_file, seq
        ) as copy_number
    from revisioned
),

checked as (
    select
        ranked.unit_id,
        ranked.batch_id,
        ranked.recipe,
        ranked.phase,
        ranked.ts,
        ranked.seq,
        {%- for s in signals %}
            ranked.{{ s }},
        {%- endfor %}
        ranked.extra,
        ranked._source_file,
        ranked._loaded_at,
        ranked._revision,
        case
            when
                ranked.unit_id is null or ranked.batch_id is null or ranked.recipe is null
                or ranked.phase is null or ranked.ts is null or ranked.seq is null
                {%- for s in signals %}
                    or ranked.{{ s }} is null
                {%- endfor %}
                then 'missing_field'
            {%- for s in signals %}
                when {{ chrom.is_nan('ranked.' ~ s) }} then 'not_a_number:{{ s }}'
            {%- endfor %}
            {%- for s in signals %}
                when ranked.{{ s }} not between limits.{{ s }}_min and limits.{{ s }}_max
                    then 'out_of_range:{{ s }}'
            {%- endfor %}
            when ranked.copy_number > 1 then 'duplicate'
            {%- if is_incremental() %}
            when accepted_before.unit_id is not null then 'duplicate'
            {%- endif %}
        end as reject_reason
    from ranked
    cross join limits
    {%- if is_incremental() %}
    left join accepted_before
        on
            ranked.unit_id = accepted_before.unit_id
            and ranked.ts = accepted_before.ts
            and ranked._revision = accepted_before._revision
    {%- endif %}
)

select * from checked
