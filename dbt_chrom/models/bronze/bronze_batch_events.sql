{{ config(incremental_strategy='append') }}

{{ chrom.bronze_json(source('landing', 'batch_events'), 'batch_events', per_line=true) }}
