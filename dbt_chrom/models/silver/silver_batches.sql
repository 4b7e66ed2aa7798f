-- One row per batch from its events: unit, recipe, column and cycle, start and end (null
-- while the batch runs), and how finely its record resolves compressed signals.
with

events as (
    select * from {{ ref('silver_batch_events') }}
    where reject_reason is null
),

batches as (
    select
        batch_id,
        min(unit_id) as unit_id,
        min(recipe) as recipe,
        min(case when event_type = 'batch_start' then column_id end) as column_id,
        cast(min(case when event_type = 'batch_start' then column_cycle end) as integer)
            as column_cycle,
        min(case when event_type = 'batch_start' then record_deadbands end) as record_deadbands,
        min(case when event_type = 'batch_start' then ts end) as started_at,
        max(case when event_type = 'batch_end' then ts end) as ended_at
    from events
    group by batch_id
)

select
    batch_id,
    unit_id,
    recipe,
    column_id,
    column_cycle,
    coalesce(started_at, (
        select min(e.ts) from events as e
        where e.batch_id = batches.batch_id
    ))
        as started_at,
    ended_at,
    case when ended_at is null then 'running' else 'complete' end as status,
    record_deadbands
from batches
