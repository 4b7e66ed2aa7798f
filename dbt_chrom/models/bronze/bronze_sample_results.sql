{{ config(incremental_strategy='append') }}

{{ chrom.bronze_json(source('landing', 'sample_results'), 'sample_results') }}
