{{ config(incremental_strategy='append') }}

{{ chrom.bronze_readings(source('landing', 'readings')) }}
