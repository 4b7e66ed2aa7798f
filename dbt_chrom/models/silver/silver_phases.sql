-- Phases of each batch from phase_start/phase_end events: a phase runs from its first
-- reading to its last one (a hold after a phase belongs to it, as the batch record has it).
with

events as (
    select * from {{ ref('silver_batch_events') }}
    where reject_reason is null and event_type in ('phase_start', 'phase_end')
),

phases as (
    select
        batch_id,
        phase,
        min(unit_id) as unit_id,
        min(recipe) as recipe,
        min(case when event_type = 'phase_start' then ts end) as started_at,
        max(case when event_type = 'phase_end' then ts end) as ended_at,
        min(buffer) as buffer,
        min(planned_cv) as planned_cv,
        min(velocity_cm_h) as velocity_cm_h
    from events
    group by batch_id, phase
)

select
    {{ chrom.surrogate_key(['batch_id', 'phase']) }} as batch_phase_id,
    batch_id,
    unit_id,
    recipe,
    phase,
    row_number() over (partition by batch_id order by started_at) as phase_order,
    started_at,
    ended_at,
    buffer,
    planned_cv,
    velocity_cm_h
from phases
where started_at is not null
