{#- The five 1 Hz signals of chrom.reading.v1, in contract order (chrom_platform/lib/core/contracts.py;
    a test keeps the two equal, and seeds/signal_specs.csv equal to SIGNAL_SPECS). -#}
{% macro signals() -%}
    {{ return(['flow_lpm', 'pressure_bar', 'uv_mau', 'cond_ms_cm', 'ph']) }}
{%- endmacro %}
