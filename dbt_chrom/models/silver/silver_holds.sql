-- Holds (pump stopped between phases) as intervals: the n-th hold_start of a batch pairs
-- with its n-th hold_end; a hold still open has no end.
with

events as (
    select * from {{ ref('silver_batch_events') }}
    where reject_reason is null and event_type in ('hold_start', 'hold_end')
),

numbered as (
    select
        batch_id,
        unit_id,
        phase,
        event_type,
        ts,
        row_number() over (partition by batch_id, event_type order by ts) as hold_number
    from events
),

holds as (
    select
        batch_id,
        hold_number,
        min(unit_id) as unit_id,
        min(phase) as phase,
        min(case when event_type = 'hold_start' then ts end) as started_at,
        min(case when event_type = 'hold_end' then ts end) as ended_at
    from numbered
    group by batch_id, hold_number
)

select
    {{ chrom.surrogate_key(['batch_id', 'hold_number']) }} as hold_id,
    batch_id,
    hold_number,
    unit_id,
    phase,
    started_at,
    ended_at,
    {{ chrom.seconds_between('started_at', 'ended_at') }} as duration_s
from holds
where started_at is not null
