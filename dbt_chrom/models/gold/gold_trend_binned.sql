{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='batch_id',
) }}

-- Each batch's signals averaged over bins of phase CV (width: var cv_bin_width), holds
-- removed: what an overlay of one batch on its recipe's history reads (about 400 rows a
-- batch instead of 15,000) and what the golden envelope is built from. Bins follow phase
-- CV, not batch CV, so phases of different length (the load follows the feed titer) still
-- line up bin for bin across batches; the bin's mean batch CV is kept for plotting by batch
-- CV. Incremental per batch, following gold_trend_by_cv.
{%- set signals = chrom.signals() %}
{%- set width = var('cv_bin_width') %}

with

gold_trend_by_cv as (
    select * from {{ ref('gold_trend_by_cv') }}
    {%- if is_incremental() %}
    where {{ chrom.rebuilt_since_last_run() }}
    {%- endif %}
)

select
    batch_id,
    phase,
    cast(floor(phase_cv / {{ width }}) as integer) as cv_bin,
    min(unit_id) as unit_id,
    min(recipe) as recipe,
    cast(floor(phase_cv / {{ width }}) as integer) * {{ width }} as cv_bin_start,
    avg(batch_cv) as batch_cv,
    count(*) as n_readings,
    min(ts) as first_ts,
    {%- for s in signals %}
        avg({{ s }}) as {{ s }},
    {%- endfor %}
    max(_source_loaded_at) as _source_loaded_at
from gold_trend_by_cv
where not is_hold
group by batch_id, phase, cast(floor(phase_cv / {{ width }}) as integer)
