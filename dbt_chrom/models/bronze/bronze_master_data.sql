{{ config(incremental_strategy='append') }}

{{ chrom.bronze_json(source('landing', 'master_data'), 'master_data') }}
