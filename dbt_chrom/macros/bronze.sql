{#-
  What each bronze model selects, per warehouse. Columns are the same on both: the landed
  fields, `_source_file` (the landing object) and `_loaded_at` (when the warehouse loaded it);
  JSON objects also `_landed_at` (when the object landed: what orders master data snapshots
  in a full rebuild, where every object is loaded at once).
-#}

{#- ---- readings: typed columns (Parquet is typed) -------------------------------------- -#}
{% macro bronze_readings(source_relation) -%}
    {{ return(adapter.dispatch('bronze_readings', 'chrom')(source_relation)) }}
{%- endmacro %}

{% macro duckdb__bronze_readings(source_relation) -%}
    {%- set files = chrom.new_landing_files('readings', 'parquet', this) %}
    {%- if files %}
select
    cast(unit_id as varchar) as unit_id,
    cast(batch_id as varchar) as batch_id,
    cast(recipe as varchar) as recipe,
    cast(phase as varchar) as phase,
    cast(timezone('UTC', ts) as timestamp) as ts,
    seq,
    {%- for s in chrom.signals() %}
    {{ s }},
    {%- endfor %}
    extra,
    {{ chrom.landing_key('filename') }} as _source_file,
    timezone('UTC', get_current_timestamp()) as _loaded_at
from read_parquet({{ chrom.file_list(files) }}, filename = true, hive_partitioning = false, union_by_name = true)
    {%- else %}
{{ chrom.empty_bronze_readings() }}
    {%- endif %}
{%- endmacro %}

{% macro snowflake__bronze_readings(source_relation) -%}
select
    raw:unit_id::varchar as unit_id,
    raw:batch_id::varchar as batch_id,
    raw:recipe::varchar as recipe,
    raw:phase::varchar as phase,
    {{ chrom.iso_timestamp('raw:ts::varchar') }} as ts,
    raw:seq::bigint as seq,
    {%- for s in chrom.signals() %}
    try_to_double(raw:{{ s }}::varchar) as {{ s }},
    {%- endfor %}
    raw:extra::varchar as extra,
    source_file as _source_file,
    loaded_at as _loaded_at
from {{ source_relation }}
{%- if is_incremental() %}
where loaded_at > (select coalesce(max(_loaded_at), '1970-01-01'::timestamp_ntz) from {{ this }})
{%- endif %}
{%- endmacro %}

{% macro empty_bronze_readings() -%}
select
    cast(null as varchar) as unit_id,
    cast(null as varchar) as batch_id,
    cast(null as varchar) as recipe,
    cast(null as varchar) as phase,
    cast(null as timestamp) as ts,
    cast(null as bigint) as seq,
    {%- for s in chrom.signals() %}
    cast(null as double) as {{ s }},
    {%- endfor %}
    cast(null as varchar) as extra,
    cast(null as varchar) as _source_file,
    cast(null as timestamp) as _loaded_at
where false
{%- endmacro %}

{#- ---- JSON objects (events, lab results, master data): the raw document ------------- -#}
{#- `per_line`: the object holds one JSON document per line (events); else one document. -#}
{% macro bronze_json(source_relation, kind, per_line=false) -%}
    {{ return(adapter.dispatch('bronze_json', 'chrom')(source_relation, kind, per_line)) }}
{%- endmacro %}

{% macro duckdb__bronze_json(source_relation, kind, per_line) -%}
    {%- set files = chrom.new_landing_files(kind, 'json', this) %}
    {%- if files %}
    {%- if per_line %}
select
    cast(line.value as json) as raw,
    {{ chrom.landing_key('filename') }} as _source_file,
    timezone('UTC', get_current_timestamp()) as _loaded_at,
    cast(timezone('UTC', last_modified) as timestamp) as _landed_at
from read_text({{ chrom.file_list(files) }}),
    unnest(string_split(trim(content, chr(10)), chr(10))) as line (value)
where trim(line.value) <> ''
    {%- else %}
select
    cast(content as json) as raw,
    {{ chrom.landing_key('filename') }} as _source_file,
    timezone('UTC', get_current_timestamp()) as _loaded_at,
    cast(timezone('UTC', last_modified) as timestamp) as _landed_at
from read_text({{ chrom.file_list(files) }})
    {%- endif %}
    {%- else %}
select
    cast(null as json) as raw,
    cast(null as varchar) as _source_file,
    cast(null as timestamp) as _loaded_at,
    cast(null as timestamp) as _landed_at
where false
    {%- endif %}
{%- endmacro %}

{% macro snowflake__bronze_json(source_relation, kind, per_line) -%}
select
    raw,
    source_file as _source_file,
    loaded_at as _loaded_at,
    -- Snowpipe loads objects as they land, so its load time orders them
    loaded_at as _landed_at
from {{ source_relation }}
{%- if is_incremental() %}
where loaded_at > (select coalesce(max(_loaded_at), '1970-01-01'::timestamp_ntz) from {{ this }})
{%- endif %}
{%- endmacro %}
