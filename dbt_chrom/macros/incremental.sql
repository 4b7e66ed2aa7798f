{#- An incremental run's watermark: the newest `column` (a load time) this model already
    holds, the epoch while it is empty. A scalar subquery, to compare a column against. -#}
{% macro last_run_watermark(column) -%}
    (select coalesce(max({{ column }}), cast('1970-01-01' as timestamp)) from {{ this }})
{%- endmacro %}

{#- The rows of gold_trend_by_cv that an incremental run of a model reading it rebuilds from:
    the batches it rebuilt since this model last ran. gold_trend_by_cv rewrites a changed batch
    whole and stamps every row of it with one `_source_loaded_at` (the newest load the batch
    was built from), so those batches are exactly its rows stamped after this model's newest
    stamp: a range filter on one column, which the scan prunes by row group. (The earlier
    form, `batch_id in (changed batches)`, is a semi-join whose plan follows the optimizer's
    estimates: after an insert DuckDB built the join on the whole history, 15M rows, 1.4 s.) -#}
{% macro rebuilt_since_last_run() -%}
    _source_loaded_at > {{ chrom.last_run_watermark('_source_loaded_at') }}
{%- endmacro %}

{#- True when a master data snapshot landed since `relation` (a model stamped with
    `_source_loaded_at`) last ran: silver reads the newest snapshot for every batch, so such a
    run rebuilds them all. Asked at run time, so the model's SQL keeps its incremental filter
    (and its pruning) on every other run. -#}
{% macro master_data_loaded_since(relation) -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set sql -%}
        select coalesce(
            (select max(_loaded_at) from {{ ref('bronze_master_data') }})
            > (select max(_source_loaded_at) from {{ relation }}),
            false
        )
    {%- endset -%}
    {{ return(run_query(sql).columns[0].values()[0]) }}
{%- endmacro %}
