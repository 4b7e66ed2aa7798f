-- Batch, phase and hold events, typed, one row per event id (a re-landed event counts
-- once). Events missing what the batch record needs, or of an unknown type, or of a unit or
-- recipe no master data snapshot declares yet, or of a batch revision a corrected re-import
-- superseded, are kept out and counted in silver_rejects. Rebuilt whole each run, so a batch
-- whose master data lands after its events joins silver then.
with

bronze_batch_events as (
    select * from {{ ref('bronze_batch_events') }}
),

silver_batch_revisions as (
    select * from {{ ref('silver_batch_revisions') }}
),

silver_units as (
    select * from {{ ref('silver_units') }}
),

silver_recipes as (
    select * from {{ ref('silver_recipes') }}
),

parsed as (
    select
        {{ chrom.json_text('raw', 'event_id') }} as event_id,
        {{ chrom.json_text('raw', 'unit_id') }} as unit_id,
        {{ chrom.json_text('raw', 'batch_id') }} as batch_id,
        {{ chrom.json_text('raw', 'recipe') }} as recipe,
        {{ chrom.json_text('raw', 'phase') }} as phase,
        {{ chrom.json_text('raw', 'event_type') }} as event_type,
        {{ chrom.iso_timestamp(chrom.json_text('raw', 'ts')) }} as ts,
        {{ chrom.json_text('raw', 'details.column_id') }} as column_id,
        {{ chrom.json_number('raw', 'details.column_cycle') }} as column_cycle,
        {{ chrom.json_text('raw', 'details.buffer') }} as buffer,
        {{ chrom.json_number('raw', 'details.planned_cv') }} as planned_cv,
        {{ chrom.json_number('raw', 'details.velocity_cm_h') }} as velocity_cm_h,
        {{ chrom.json_serialized('raw', 'details.record_deadbands') }} as record_deadbands,
        _source_file,
        _loaded_at,
        {{ chrom.landing_revision('_source_file') }} as _revision
    from bronze_batch_events
),

revisioned as (
    {{ chrom.with_batch_revision('parsed') }}
),

checked as (
    select
        revisioned.*,
        case
            when
                revisioned.event_id is null or revisioned.unit_id is null
                or revisioned.batch_id is null or revisioned.recipe is null
                then 'missing_field'
            when revisioned.ts is null then 'bad_timestamp'
            when revisioned.event_type not in (
                    'batch_start', 'batch_end', 'phase_start', 'phase_end', 'hold_start', 'hold_end'
                ) then 'unknown_event_type'
            when revisioned.event_type like 'phase_%' and revisioned.phase is null then 'missing_field'
            when silver_units.unit_id is null then 'unknown_unit'
            when silver_recipes.recipe is null then 'unknown_recipe'
            when revisioned._revision < revisioned.batch_revision then 'superseded'
            when row_number() over (
                    partition by revisioned.event_id
                    order by
                        revisioned._revision desc,
                        revisioned._loaded_at asc,
                        revisioned._source_file asc
                ) > 1 then 'duplicate'
        end as reject_reason
    from revisioned
    left join silver_units on revisioned.unit_id = silver_units.unit_id
    left join silver_recipes on revisioned.recipe = silver_recipes.recipe
)

select * from checked
