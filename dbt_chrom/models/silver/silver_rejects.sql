{{ config(materialized='view') }}

-- What silver kept out, by source and reason: readings, events and lab results.
with

readings as (
    select * from {{ ref('silver_readings_checked') }}
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
