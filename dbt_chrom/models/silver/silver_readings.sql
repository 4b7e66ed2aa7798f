{{ config(materialized='view') }}

-- Valid 1 Hz readings: typed, one per (unit_id, ts), within instrument range, known unit.
with

checked as (
    select * from {{ ref('silver_readings_checked') }}
)

select
    unit_id,
    batch_id,
    recipe,
    phase,
    ts,
    seq,
    {%- for s in chrom.signals() %}
        {{ s }},
    {%- endfor %}
    extra,
    _source_file,
    _loaded_at
from checked
where reject_reason is null
