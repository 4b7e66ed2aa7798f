-- Each batch's latest revision. A corrected re-import (`chrom import --replace`) lands the
-- batch again as new objects named `-r<n>`; silver keeps a batch's objects of this revision
-- and marks the earlier ones superseded (they stay loaded, for lineage).
with

bronze_batch_events as (
    select * from {{ ref('bronze_batch_events') }}
),

revisions as (
    select
        {{ chrom.json_text('raw', 'batch_id') }} as batch_id,
        {{ chrom.landing_revision('_source_file') }} as revision
    from bronze_batch_events
)

select
    batch_id,
    max(revision) as revision,
    count(distinct revision) as revisions_landed
from revisions
where batch_id is not null
group by batch_id
