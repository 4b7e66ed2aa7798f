-- Each recipe's phases in order, with the recipe's own names and what each does (its kind,
-- which the analytics key on), and the buffer each one pumps: what conductivity and pH the
-- column outlet should reach in that phase (the sensor-range checks use this).
with

bronze_master_data as (
    select * from {{ ref('bronze_master_data') }}
),

latest_recipes as (
    {{ chrom.latest_master_data('bronze_master_data', 'recipes') }}
),

buffers as (
    select
        {{ chrom.json_text('b.value', 'name') }} as buffer,
        {{ chrom.json_number('b.value', 'cond_ms_cm') }} as buffer_cond_ms_cm,
        {{ chrom.json_number('b.value', 'ph') }} as buffer_ph,
        {{ chrom.json_number('b.value', 'uv_mau') }} as buffer_uv_mau,
        {{ chrom.json_number('b.value', 'viscosity_mpa_s') }} as buffer_viscosity_mpa_s,
        -- the buffer's specification ranges (null where master data gives none)
        {{ chrom.json_number('b.value', 'spec.cond_ms_cm[0]') }} as buffer_cond_min_ms_cm,
        {{ chrom.json_number('b.value', 'spec.cond_ms_cm[1]') }} as buffer_cond_max_ms_cm,
        {{ chrom.json_number('b.value', 'spec.ph[0]') }} as buffer_ph_min,
        {{ chrom.json_number('b.value', 'spec.ph[1]') }} as buffer_ph_max
    from latest_recipes,
        {{ chrom.json_array_elements(chrom.json_value('raw', 'buffers'), 'b') }}
),

recipes as (
    select
        {{ chrom.json_text('r.value', 'recipe') }} as recipe,
        {{ chrom.json_number('r.value', 'flow_tolerance_pct') }} as flow_tolerance_pct,
        {{ chrom.json_value('r.value', 'phases') }} as phases
    from latest_recipes,
        {{ chrom.json_array_elements(chrom.json_value('raw', 'recipes'), 'r') }}
),

phases as (
    select
        recipes.recipe,
        recipes.flow_tolerance_pct,
        p.index + 1 as phase_order,
        {{ chrom.json_text('p.value', 'name') }} as phase,
        {{ chrom.json_text('p.value', 'kind') }} as phase_kind,
        -- "load": the load volume follows the feed titer, so no fixed CV
        {{ chrom.json_number('p.value', 'cv') }} as planned_cv,
        {{ chrom.json_number('p.value', 'velocity_cm_h') }} as velocity_cm_h,
        {{ chrom.json_text('p.value', 'buffer') }} as buffer,
        -- CV over which the inlet ramps to the phase's buffer; 0 (absent): a step
        coalesce({{ chrom.json_number('p.value', 'gradient_cv') }}, 0) as gradient_cv
    from recipes,
        {{ chrom.json_array_elements('recipes.phases', 'p') }}
)

select
    phases.recipe,
    phases.phase_order,
    phases.phase,
    phases.phase_kind,
    phases.planned_cv,
    phases.velocity_cm_h,
    phases.buffer,
    phases.gradient_cv,
    phases.flow_tolerance_pct,
    buffers.buffer_cond_ms_cm,
    buffers.buffer_ph,
    buffers.buffer_uv_mau,
    buffers.buffer_viscosity_mpa_s,
    buffers.buffer_cond_min_ms_cm,
    buffers.buffer_cond_max_ms_cm,
    buffers.buffer_ph_min,
    buffers.buffer_ph_max
from phases
left join buffers on phases.buffer = buffers.buffer
