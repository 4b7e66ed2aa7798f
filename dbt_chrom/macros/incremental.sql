{#- The batches whose gold rows an incremental run must rebuild: those `upstream` rebuilt
    since this model last ran (both carry `_source_loaded_at`, the newest load a batch's rows
    were built from). Empty outside incremental runs, where every batch is built. -#}
{% macro changed_batches_since_last_run(upstream) -%}
    select distinct batch_id from {{ upstream }}
    where _source_loaded_at > (
        select coalesce(max(_source_loaded_at), cast('1970-01-01' as timestamp)) from {{ this }}
    )
{%- endmacro %}
