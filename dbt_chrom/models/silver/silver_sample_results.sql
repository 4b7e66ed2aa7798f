-- Lab analyses flattened, one row per analysis attempt. A sample's reportable result is its
-- last successful scan: failed scans are retested, and only the retest that passed counts.
with

bronze_sample_results as (
    select * from {{ ref('bronze_sample_results') }}
),

silver_batch_revisions as (
    select * from {{ ref('silver_batch_revisions') }}
),

parsed as (
    select
        {{ chrom.json_text('raw', 'sample_id') }} as sample_id,
        cast({{ chrom.json_number('raw', 'attempt') }} as integer) as attempt,
        {{ chrom.json_text('raw', 'unit_id') }} as unit_id,
        {{ chrom.json_text('raw', 'batch_id') }} as batch_id,
        {{ chrom.json_text('raw', 'recipe') }} as recipe,
        {{ chrom.json_text('raw', 'sample_point') }} as sample_point,
        {{ chrom.json_text('raw', 'analyte') }} as analyte,
        {{ chrom.json_text('raw', 'method') }} as analytical_method,
        {{ chrom.json_text('raw', 'instrument_id') }} as instrument_id,
        {{ chrom.iso_timestamp(chrom.json_text('raw', 'sampled_at')) }} as sampled_at,
        {{ chrom.iso_timestamp(chrom.json_text('raw', 'analyzed_at')) }} as analyzed_at,
        {{ chrom.json_text('raw', 'status') }} as status,
        {{ chrom.json_text('raw', 'failure_reason') }} as failure_reason,
        {{ chrom.json_text('raw', 'retest_of') }} as retest_of,
        {{ chrom.json_number('raw', 'scan.result') }} as result,
        {{ chrom.json_text('raw', 'scan.unit') }} as result_unit,
        {{ chrom.json_number('raw', 'scan.dilution_factor') }} as dilution_factor,
        {{ chrom.json_number('raw', 'scan.response') }} as response,
        {{ chrom.json_number('raw', 'calibration.regression.slope') }} as calibration_slope,
        {{ chrom.json_number('raw', 'calibration.regression.intercept') }} as calibration_intercept,
        {{ chrom.json_number('raw', 'calibration.regression.r2') }} as calibration_r2,
        _source_file,
        _loaded_at,
        {{ chrom.landing_revision('_source_file') }} as _revision
    from bronze_sample_results
),

revisioned as (
    {{ chrom.with_batch_revision('parsed') }}
),

checked as (
    select
        *,
        case
            when sample_id is null or attempt is null or batch_id is null or sample_point is null
                then 'missing_field'
            when status not in ('ok', 'failed') then 'unknown_status'
            when status = 'ok' and (result is null or result_unit <> 'g/L') then 'bad_result'
            when _revision < batch_revision then 'superseded'
            when row_number() over (
                    partition by sample_id, attempt
                    order by _revision desc, _loaded_at asc, _source_file asc
                ) > 1 then 'duplicate'
        end as reject_reason
    from revisioned
)

select
    {{ chrom.surrogate_key(['sample_id', 'attempt']) }} as analysis_id,
    checked.*,
    reject_reason is null and status = 'ok' and row_number() over (
        partition by sample_id, (reject_reason is null and status = 'ok')
        order by attempt desc, analyzed_at desc
    ) = 1 as is_reportable
from checked
