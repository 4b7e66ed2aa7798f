{{ config(materialized='view') }}

-- What silver kept out, by source and reason: readings, events and lab results.
with

readings_checked as (
    select * from {{ ref('silver_readings_checked') }}
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

-- a reading's unit and its batch's revision are judged at read time, as silver_readings
-- judges them: a reading accepted before its batch was corrected is superseded now, and
-- one of a unit or recipe no master data snapshot declares is `unknown_unit` or
-- `unknown_recipe` until one does
readings as (
    select
        readings_checked._source_file,
        coalesce(
            readings_checked.reject_reason,
            case
                when silver_units.unit_id is null then 'unknown_unit'
                when silver_recipes.recipe is null then 'unknown_recipe'
                when
                    coalesce(readings_checked._revision, 1)
                    <> coalesce(silver_batch_revisions.revision, 1)
                    then 'superseded'
            end
        ) as reject_reason
    from readings_checked
    left join silver_units on readings_checked.unit_id = silver_units.unit_id
    left join silver_recipes on readings_checked.recipe = silver_recipes.recipe
    left join silver_batch_revisions
        on readings_checked.batch_id = silver_batch_revisions.batch_id
),

events as (
    select * from {{ ref('silver_batch_events') }}
),

samples as (
    select * from {{ ref('silver_sample_results') }}
),

rejected as (
    select
        'readings' as rejected_from,
        reject_reason,
        count(*) as rows_rejected,
        min(_source_file) as example_source_file
    from readings
    where reject_reason is not null
    group by reject_reason

    union all

    select
        'batch_events' as rejected_from,
        reject_reason,
        count(*) as rows_rejected,
        min(_source_file) as example_source_file
    from events
    where reject_reason is not null
    group by reject_reason

    union all

    select
        'sample_results' as rejected_from,
        reject_reason,
        count(*) as rows_rejected,
        min(_source_file) as example_source_file
    from samples
    where reject_reason is not null
    group by reject_reason
)

select * from rejected
