-- Per batch, the reportable lab results the yield needs: feed titer (before the column) and
-- eluate pool concentration (after it), each the sample's last successful scan.
with

samples as (
    select * from {{ ref('silver_sample_results') }}
    where is_reportable
)

select
    batch_id,
    max(case when sample_point = 'feed' then result end) as feed_titer_g_l,
    max(case when sample_point = 'pool' then result end) as pool_conc_g_l,
    max(case when sample_point = 'feed' then attempt end) as feed_attempts,
    max(case when sample_point = 'pool' then attempt end) as pool_attempts
from samples
group by batch_id
