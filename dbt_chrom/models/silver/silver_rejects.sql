{{ config(materialized='view') }}

-- What silver kept out, by source and reason: readings, events and lab results.
with

readings_checked as (
    select * from {{ ref('silver_readings_checked') }}
),

silver_batch_revisions as (
    select * from {{ ref('silver_batch_revisions') }}
),

-- a reading accepted before its batch was corrected is superseded now (silver_readings
-- keeps the latest revision); one classified after the correction landed may be too
readings as (
    select
        readings_checked._source_file,
        coalesce(
            readings_checked.reject_reason,
            case
                when
                    coalesce(readings_checked._revision, 1)
                    <> coalesce(silver_batch_revisions.revision, 1)
                    then 'superseded'
            end
        ) as reject_reason
    from readings_checked
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
