{#-
  Bronze reads the landing zone. DuckDB reads the landed objects themselves (only the ones
  not loaded yet, so a run costs the new data, not the history); Snowflake reads the raw
  tables Snowpipe loads from the GCS stage (VARIANT + source file + load time, see infra/).
-#}

{#- The landing root as DuckDB globs it: a folder, or a URL of a registered filesystem. -#}
{% macro landing_root() -%}
    {%- set root = var('landing_root') | string -%}
    {%- if root.startswith('file://') -%}{%- set root = root[7:] -%}{%- endif -%}
    {{- return(root.rstrip('/')) -}}
{%- endmacro %}

{#- Landed objects under landing/<kind>/ not yet loaded into `relation`. Landed objects are
    immutable by contract: a name is a function of the content (a seq range, an event id, a
    sample attempt, a content hash), so re-landing writes the same bytes under the same name. -#}
{% macro new_landing_files(kind, extension, relation) -%}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {%- set depth = '/*/*/*.' if kind != 'master_data' else '/*/*.' -%}
    {%- set pattern = landing_root() ~ '/landing/' ~ kind ~ depth ~ extension -%}
    {%- set sql -%}
        select file from glob('{{ pattern }}')
        -- a hidden name is never an object: a writer's temporary file (the local store
        -- writes `.tmp-*`, then renames), or one left by a writer killed mid-write
        where not regexp_matches(file, '(^|/)\.[^/]*$')
        {%- if is_incremental() %}
        and {{ chrom.landing_key('file') }} not in (select distinct _source_file from {{ relation }})
        {%- endif %}
        order by file
    {%- endset -%}
    {%- set files = run_query(sql).columns[0].values() | list -%}
    {{ return(files) }}
{%- endmacro %}

{#- A SQL list literal of file names for DuckDB's readers. -#}
{% macro file_list(files) -%}
    [{%- for f in files -%}'{{ f | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}]
{%- endmacro %}

{#- The landing key of a globbed file (landing/<kind>/...), as Snowpipe's METADATA$FILENAME
    names it relative to the stage: the same in both warehouses, whatever the root. -#}
{% macro landing_key(file_expr) -%}
    substr({{ file_expr }}, {{ chrom.landing_root() | length + 2 }})
{%- endmacro %}

{#- The batch revision a landed object belongs to, from its key: `...-r<n>.<ext>` for a
    corrected re-import (`chrom import --replace`), 1 without a suffix. Each batch's latest
    revision is what silver keeps; the earlier objects stay loaded, marked superseded. -#}
{% macro landing_revision(key_expr) -%}
    {{ return(adapter.dispatch('landing_revision', 'chrom')(key_expr)) }}
{%- endmacro %}

{% macro duckdb__landing_revision(key_expr) -%}
    coalesce(try_cast(nullif(regexp_extract({{ key_expr }}, '-r([0-9]+)\.(parquet|json)$', 1), '') as integer), 1)
{%- endmacro %}

{% macro snowflake__landing_revision(key_expr) -%}
    coalesce(try_to_number(regexp_substr({{ key_expr }}, '-r([0-9]+)\\.(parquet|json)$', 1, 1, 'e', 1)), 1)
{%- endmacro %}

{#- The rows of `relation` (landed objects' rows, with batch_id) and their batch's latest
    revision as `batch_revision`, from the calling model's `silver_batch_revisions` CTE:
    a row whose `_revision` is below it was superseded by a corrected re-import. -#}
{% macro with_batch_revision(relation) -%}
    select
        {{ relation }}.*,
        silver_batch_revisions.revision as batch_revision
    from {{ relation }}
    left join silver_batch_revisions
        on {{ relation }}.batch_id = silver_batch_revisions.batch_id
{%- endmacro %}
