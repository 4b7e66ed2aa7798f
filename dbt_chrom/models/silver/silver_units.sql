-- Units (skids) and their columns from the newest equipment snapshot: column volume, bed
-- height, the flow dead band and the instruments' accuracy come from here, never from
-- literals.
with

bronze_master_data as (
    select * from {{ ref('bronze_master_data') }}
),

latest_equipment as (
    {{ chrom.latest_master_data('bronze_master_data', 'equipment') }}
),

units as (
    select
        {{ chrom.json_text('u.value', 'unit_id') }} as unit_id,
        {{ chrom.json_text('u.value', 'column_id') }} as column_id,
        {{ chrom.json_text('u.value', 'resin') }} as resin,
        {{ chrom.json_number('u.value', 'column_diameter_cm') }} as column_diameter_cm,
        {{ chrom.json_number('u.value', 'bed_height_cm') }} as bed_height_cm,
        {{ chrom.json_number('u.value', 'column_volume_l') }} as column_volume_l,
        {{ chrom.json_number('u.value', 'flow_deadband_lpm') }} as flow_deadband_lpm,
        {{ chrom.json_number('u.value', 'pressure_limit_bar') }} as pressure_limit_bar,
        {{ chrom.json_number('u.value', 'hetp_cm') }} as qualified_hetp_cm,
        {{ chrom.json_number('u.value', 'asymmetry') }} as qualified_asymmetry,
        {{ chrom.json_number('u.value', 'system_holdup_l') }} as system_holdup_l,
        {{ chrom.json_number('u.value', 'system_pressure_bar_per_lpm') }}
            as system_pressure_bar_per_lpm,
        {{ chrom.json_number('u.value', 'uv_max_mau') }} as uv_max_mau,
        {{ chrom.json_number('u.value', 'uv_path_length_cm') }} as uv_path_length_cm,
        {{ chrom.json_serialized('u.value', 'instrument_accuracy') }} as instrument_accuracy
    from latest_equipment,
        {{ chrom.json_array_elements(chrom.json_value('raw', 'units'), 'u') }}
),

resins as (
    select
        {{ chrom.json_text('r.value', 'name') }} as resin,
        {{ chrom.json_number('r.value', 'total_porosity') }} as resin_total_porosity,
        {{ chrom.json_number('r.value', 'dbc10_g_l') }} as resin_dbc10_g_l
    from latest_equipment,
        {{ chrom.json_array_elements(chrom.json_value('raw', 'resins'), 'r') }}
)

select
    units.*,
    resins.resin_total_porosity,
    resins.resin_dbc10_g_l
from units
left join resins on units.resin = resins.resin
