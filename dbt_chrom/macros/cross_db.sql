{#-
  The few places where DuckDB and Snowflake SQL differ, each behind adapter.dispatch so a
  model reads the same on both. No dbt packages: the hub is unreachable here.
-#}

{#- A stable key from columns: md5 of the values joined by '|', nulls as a marker. -#}
{% macro surrogate_key(columns) -%}
    {{ return(adapter.dispatch('surrogate_key', 'chrom')(columns)) }}
{%- endmacro %}

{% macro default__surrogate_key(columns) -%}
    md5(concat_ws('|'{% for c in columns %}, coalesce(cast({{ c }} as varchar), '<null>'){% endfor %}))
{%- endmacro %}

{#- Text at a path of a JSON document (bronze keeps raw JSON: DuckDB JSON, Snowflake VARIANT). -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'chrom')(column, path)) }}
{%- endmacro %}

{% macro duckdb__json_text(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro snowflake__json_text(column, path) -%}
    {{ column }}:{{ path }}::varchar
{%- endmacro %}

{#- A number at a path of a JSON document, as double; null if absent or not numeric. -#}
{% macro json_number(column, path) -%}
    {{ return(adapter.dispatch('json_number', 'chrom')(column, path)) }}
{%- endmacro %}

{% macro duckdb__json_number(column, path) -%}
    try_cast(json_extract({{ column }}, '$.{{ path }}') as double)
{%- endmacro %}

{% macro snowflake__json_number(column, path) -%}
    try_to_double({{ column }}:{{ path }}::varchar)
{%- endmacro %}

{#- The JSON value at a path (for flattening arrays). -#}
{% macro json_value(column, path) -%}
    {{ return(adapter.dispatch('json_value', 'chrom')(column, path)) }}
{%- endmacro %}

{% macro duckdb__json_value(column, path) -%}
    json_extract({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro snowflake__json_value(column, path) -%}
    {{ column }}:{{ path }}
{%- endmacro %}

{#- The JSON value at a path serialized as text (an array or object kept whole). -#}
{% macro json_serialized(column, path) -%}
    {{ return(adapter.dispatch('json_serialized', 'chrom')(column, path)) }}
{%- endmacro %}

{% macro duckdb__json_serialized(column, path) -%}
    cast(json_extract({{ column }}, '$.{{ path }}') as varchar)
{%- endmacro %}

{% macro snowflake__json_serialized(column, path) -%}
    to_json({{ column }}:{{ path }})
{%- endmacro %}

{#- FROM-clause fragment: one row per element of a JSON array: `alias.value` (the element)
    and `alias.index` (its 0-based position, which keeps e.g. a recipe's phase order). -#}
{% macro json_array_elements(array_expr, alias) -%}
    {{ return(adapter.dispatch('json_array_elements', 'chrom')(array_expr, alias)) }}
{%- endmacro %}

{% macro duckdb__json_array_elements(array_expr, alias) -%}
    lateral (
        select
            unnest(cast({{ array_expr }} as json[])) as value,
            generate_subscripts(cast({{ array_expr }} as json[]), 1) - 1 as index
    ) as {{ alias }}
{%- endmacro %}

{% macro snowflake__json_array_elements(array_expr, alias) -%}
    lateral flatten(input => {{ array_expr }}) as {{ alias }}
{%- endmacro %}

{#- UTC timestamp from ISO 8601 text ('2025-01-01T19:01:45.137Z'). -#}
{% macro iso_timestamp(text_expr) -%}
    {{ return(adapter.dispatch('iso_timestamp', 'chrom')(text_expr)) }}
{%- endmacro %}

{% macro duckdb__iso_timestamp(text_expr) -%}
    try_cast(try_cast({{ text_expr }} as timestamptz) at time zone 'UTC' as timestamp)
{%- endmacro %}

{% macro snowflake__iso_timestamp(text_expr) -%}
    convert_timezone('UTC', try_cast({{ text_expr }} as timestamp_tz))::timestamp_ntz
{%- endmacro %}

{#- Seconds between two timestamps, with the sub-second part (1 Hz data at ms precision). -#}
{% macro seconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('seconds_between', 'chrom')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro duckdb__seconds_between(start_ts, end_ts) -%}
    (epoch_ns({{ end_ts }}) - epoch_ns({{ start_ts }})) / 1e9
{%- endmacro %}

{#- Milliseconds, the resolution of `ts` on the wire. (Nanoseconds would read the same on
    Snowflake, but fakesnow's transpiler drops the parentheses of that form.) -#}
{% macro snowflake__seconds_between(start_ts, end_ts) -%}
    timestampdiff(millisecond, {{ start_ts }}, {{ end_ts }}) / 1000.0
{%- endmacro %}

{#- Comma-separated distinct values of a string column, sorted (alerts, offending signals). -#}
{% macro sorted_string_agg(expr) -%}
    {{ return(adapter.dispatch('sorted_string_agg', 'chrom')(expr)) }}
{%- endmacro %}

{% macro duckdb__sorted_string_agg(expr) -%}
    string_agg(distinct {{ expr }}, ',' order by {{ expr }})
{%- endmacro %}

{% macro snowflake__sorted_string_agg(expr) -%}
    listagg(distinct {{ expr }}, ',') within group (order by {{ expr }})
{%- endmacro %}

{#- True when a double is NaN (both warehouses order NaN above every number). -#}
{% macro is_nan(expr) -%}
    {{ return(adapter.dispatch('is_nan', 'chrom')(expr)) }}
{%- endmacro %}

{% macro duckdb__is_nan(expr) -%}
    isnan({{ expr }})
{%- endmacro %}

{% macro snowflake__is_nan(expr) -%}
    ({{ expr }} = 'NaN'::float)
{%- endmacro %}
