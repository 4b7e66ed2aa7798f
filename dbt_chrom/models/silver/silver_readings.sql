{{ config(materialized='view') }}

-- Valid 1 Hz readings: typed, one per (unit_id, ts), within instrument range, of a unit and
-- a recipe master data declares, of their batch's latest revision (a corrected re-import
-- supersedes what it corrects). Those questions are asked here, at read time, so a reading
-- landed before its unit's or recipe's snapshot, or before its batch's correction, is
-- judged by the newest answer.
with

checked as (
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
inner join silver_units on checked.unit_id = silver_units.unit_id
inner join silver_recipes on checked.recipe = silver_recipes.recipe
left join silver_batch_revisions on checked.batch_id = silver_batch_revisions.batch_id
where
    checked.reject_reason is null
    -- rows classified before the revisions were tracked have no _revision: all were 1
    and coalesce(checked._revision, 1) = coalesce(silver_batch_revisions.revision, 1)
