{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='batch_id',
) }}

-- Per batch: load volume and mass (load volume x the feed titer the lab reported), the
-- eluate pool cut from the elution UV peak by the recipe's criteria (start on the rising
-- edge, end on the falling edge, each absolute mAU or % of the peak maximum), pool volume
-- and mass (pool volume x the pool concentration the lab reported), step yield, and alerts.
-- Incremental per batch, following gold_trend_by_cv.

with

gold_trend_by_cv as (
    select * from {{ ref('gold_trend_by_cv') }}
    {%- if is_incremental() %}
    where {{ chrom.rebuilt_since_last_run() }}
    {%- endif %}
),

gold_phase_summary as (
    select * from {{ ref('gold_phase_summary') }}
),

silver_batches as (
    select * from {{ ref('silver_batches') }}
),

silver_batch_lab_results as (
    select * from {{ ref('silver_batch_lab_results') }}
),

silver_recipes as (
    select * from {{ ref('silver_recipes') }}
),

silver_units as (
    select * from {{ ref('silver_units') }}
),

silver_recipe_phases as (
    select * from {{ ref('silver_recipe_phases') }}
),

-- each recipe's load and the phase it elutes its product in (its first of kind elution):
-- by kind, whatever the recipe calls them
key_phases as (
    select
        recipe,
        phase,
        phase_kind
    from silver_recipe_phases
    where phase_kind in ('load', 'elution')
    qualify row_number() over (partition by recipe, phase_kind order by phase_order) = 1
),

batch_readings as (
    select
        batch_id,
        min(unit_id) as unit_id,
        min(recipe) as recipe,
        max(batch_cv) as total_cv,
        max(volume_l) as total_volume_l,
        max(pressure_bar) as max_pressure_bar,
        count(*) as n_readings,
        max(_source_loaded_at) as _source_loaded_at
    from gold_trend_by_cv
    group by batch_id
),

-- The pool is cut on the elution UV averaged over a few scans either side, as a skid's
-- pooling logic filters its UV: on raw 1 Hz readings one noise spike opens the pool early,
-- one dip closes it early, and the maximum that %-of-maximum cuts scale with is biased up
-- by the noise (a noisy detector's step yield was off by 2 pp).
elution as (
    select
        gold_trend_by_cv.batch_id,
        gold_trend_by_cv.ts,
        gold_trend_by_cv.batch_cv,
        gold_trend_by_cv.volume_l,
        gold_trend_by_cv.uv_mau as raw_uv_mau,
        avg(gold_trend_by_cv.uv_mau) over (
            partition by gold_trend_by_cv.batch_id
            order by gold_trend_by_cv.ts
            rows between {{ var('pool_smoothing_scans') }} preceding
            and {{ var('pool_smoothing_scans') }} following
        ) as uv_mau
    from gold_trend_by_cv
    inner join key_phases
        on
            gold_trend_by_cv.recipe = key_phases.recipe
            and gold_trend_by_cv.phase = key_phases.phase
            and key_phases.phase_kind = 'elution'
),

peak as (
    select
        batch_id,
        max(uv_mau) as peak_max_mau,
        max(raw_uv_mau) as raw_max_mau
    from elution
    group by batch_id
),

apex as (
    select
        elution.batch_id,
        min(elution.ts) as apex_ts
    from elution
    inner join peak
        on elution.batch_id = peak.batch_id and elution.uv_mau = peak.peak_max_mau
    group by elution.batch_id
),

thresholds as (
    select
        peak.batch_id,
        peak.peak_max_mau,
        peak.raw_max_mau,
        apex.apex_ts,
        case
            when silver_recipes.pool_start_mode = 'absolute' then silver_recipes.pool_start_value
            else silver_recipes.pool_start_value / 100.0 * peak.peak_max_mau
        end as pool_start_mau,
        case
            when silver_recipes.pool_end_mode = 'absolute' then silver_recipes.pool_end_value
            else silver_recipes.pool_end_value / 100.0 * peak.peak_max_mau
        end as pool_end_mau
    from peak
    inner join apex on peak.batch_id = apex.batch_id
    inner join batch_readings on peak.batch_id = batch_readings.batch_id
    inner join silver_recipes on batch_readings.recipe = silver_recipes.recipe
),

-- The pool opens at the first reading up to the apex at or above the start threshold, and
-- closes at the first reading from the apex on at or below the end threshold.
cut_points as (
    select
        thresholds.batch_id,
        min(case
            when elution.ts <= thresholds.apex_ts and elution.uv_mau >= thresholds.pool_start_mau
                then elution.ts
        end) as pool_start_ts,
        min(case
            when elution.ts >= thresholds.apex_ts and elution.uv_mau <= thresholds.pool_end_mau
                then elution.ts
        end) as pool_end_ts
    from thresholds
    inner join elution on thresholds.batch_id = elution.batch_id
    group by thresholds.batch_id
),

pool as (
    select
        cut_points.batch_id,
        cut_points.pool_start_ts,
        cut_points.pool_end_ts,
        pool_start.batch_cv as pool_start_cv,
        pool_end.batch_cv as pool_end_cv,
        pool_end.volume_l - pool_start.volume_l as pool_volume_l
    from cut_points
    inner join elution as pool_start
        on cut_points.batch_id = pool_start.batch_id
            and cut_points.pool_start_ts = pool_start.ts
    inner join elution as pool_end
        on cut_points.batch_id = pool_end.batch_id
            and cut_points.pool_end_ts = pool_end.ts
),

load_phase as (
    select
        gold_phase_summary.batch_id,
        gold_phase_summary.volume_l as load_volume_l,
        gold_phase_summary.cv as load_cv
    from gold_phase_summary
    inner join key_phases
        on
            gold_phase_summary.recipe = key_phases.recipe
            and gold_phase_summary.phase = key_phases.phase
            and key_phases.phase_kind = 'load'
),

results as (
    select
        batch_readings.batch_id,
        batch_readings.unit_id,
        batch_readings.recipe,
        silver_batches.column_id,
        silver_batches.column_cycle,
        coalesce(silver_batches.status, 'running') as status,
        silver_batches.started_at,
        silver_batches.ended_at,
        batch_readings.n_readings,
        batch_readings.total_cv,
        batch_readings.total_volume_l,
        load_phase.load_volume_l,
        load_phase.load_cv,
        silver_batch_lab_results.feed_titer_g_l,
        load_phase.load_volume_l * silver_batch_lab_results.feed_titer_g_l as load_mass_g,
        load_phase.load_volume_l * silver_batch_lab_results.feed_titer_g_l
        / silver_units.column_volume_l as resin_loading_g_l,
        thresholds.peak_max_mau,
        -- a peak at the detector's limit was clipped: a %-of-maximum cut moves with it
        coalesce(thresholds.raw_max_mau >= silver_units.uv_max_mau, false) as uv_saturated,
        thresholds.pool_start_mau,
        thresholds.pool_end_mau,
        pool.pool_start_ts,
        pool.pool_end_ts,
        pool.pool_start_cv,
        pool.pool_end_cv,
        pool.pool_volume_l,
        silver_batch_lab_results.pool_conc_g_l,
        pool.pool_volume_l * silver_batch_lab_results.pool_conc_g_l as pool_mass_g,
        pool.pool_volume_l * silver_batch_lab_results.pool_conc_g_l
        / nullif(load_phase.load_volume_l * silver_batch_lab_results.feed_titer_g_l, 0)
            as step_yield,
        silver_recipes.step_yield_min,
        silver_recipes.step_yield_max,
        batch_readings.max_pressure_bar,
        silver_units.pressure_limit_bar,
        silver_units.resin_dbc10_g_l,
        batch_readings._source_loaded_at
    from batch_readings
    inner join silver_units on batch_readings.unit_id = silver_units.unit_id
    left join silver_recipes on batch_readings.recipe = silver_recipes.recipe
    left join silver_batches on batch_readings.batch_id = silver_batches.batch_id
    left join load_phase on batch_readings.batch_id = load_phase.batch_id
    left join silver_batch_lab_results
        on batch_readings.batch_id = silver_batch_lab_results.batch_id
    left join thresholds on batch_readings.batch_id = thresholds.batch_id
    left join pool on batch_readings.batch_id = pool.batch_id
),

alerts as (
    select
        batch_id,
        nullif(concat_ws(
            ',',
            case when status = 'complete' and pool_volume_l is null then 'pool_not_found' end,
            case when status = 'complete' and feed_titer_g_l is null then 'feed_titer_missing' end,
            case when status = 'complete' and pool_conc_g_l is null then 'pool_result_missing' end,
            case when step_yield < step_yield_min then 'step_yield_low' end,
            case when step_yield > step_yield_max then 'step_yield_high' end,
            case when max_pressure_bar > pressure_limit_bar then 'pressure_over_limit' end,
            case when resin_loading_g_l > resin_dbc10_g_l then 'loading_over_dbc10' end
        ), '') as alerts
    from results
)

select
    results.*,
    alerts.alerts,
    case when alerts.alerts is null then 0
        else length(alerts.alerts) - length(replace(alerts.alerts, ',', '')) + 1
    end as alert_count
from results
inner join alerts on results.batch_id = alerts.batch_id
