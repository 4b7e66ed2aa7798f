{#- The newest landed master-data snapshot of a kind (equipment | recipes), as one `raw` row:
    the silver master-data models all read from it. Newest by landing time, then by load
    time: a full rebuild loads every snapshot at once, and must pick the one an incremental
    run picked. -#}
{% macro latest_master_data(bronze_relation, kind) -%}
    select raw
    from {{ bronze_relation }}
    where _source_file like 'landing/master_data/{{ kind }}/%'
    qualify row_number() over (
        order by _landed_at desc nulls last, _loaded_at desc, _source_file desc
    ) = 1
{%- endmacro %}
