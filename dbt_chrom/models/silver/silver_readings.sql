{{ config(materialized='view') }}

-- Valid 1 Hz readings: typed, one per (unit_id, ts), within instrument range, known unit,
-- of their batch's latest revision (a corrected re-import supersedes what it corrects).
with

checked as (
    select * from {{ ref('silver_readings_checked') }}
),

silver_batch_revisions as (
    select * from {{ ref('silver_batch_revisions') }}
)

select
    checked.unit_id,
    checked.batch_id,
    checked.recipe,
    checked.phase,
    checked.ts,
    checked.seq,
    {%- for s in chrom.signals() %}
        checked.{{ s }},
    {%- endfor %}
    checked.extra,
    checked._source_file,
    checked._loaded_at
from checked
left join silver_batch_revisions on checked.batch_id = silver_batch_revisions.batch_id
where
    checked.reject_reason is null
    -- rows classified before the revisions were tracked have no _revision: all were 1
    and coalesce(checked._revision, 1) = coalesce(silver_batch_revisions.revision, 1)
