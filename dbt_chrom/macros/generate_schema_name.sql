{#- Layers get their own schema, named as the layer (bronze, silver, gold) in every target,
    so the production DDL, grants and Grafana queries name the same schemas as local. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
