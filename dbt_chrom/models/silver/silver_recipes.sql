-- Recipes from the newest recipe snapshot, with the pooling criteria that decide where the
-- eluate pool starts and ends on the elution UV peak, and the step-yield range a good batch
-- of the recipe reaches (master data, not a warehouse-wide setting).
with

bronze_master_data as (
    select * from {{ ref('bronze_master_data') }}
),

latest_recipes as (
    {{ chrom.latest_master_data('bronze_master_data', 'recipes') }}
),

recipes as (
    select
        {{ chrom.json_text('r.value', 'recipe') }} as recipe,
        {{ chrom.json_text('r.value', 'product') }} as product,
        {{ chrom.json_number('r.value', 'extinction_l_g_cm') }} as extinction_l_g_cm,
        {{ chrom.json_number('r.value', 'target_loading_g_l') }} as target_loading_g_l,
        {{ chrom.json_text('r.value', 'pooling.start.mode') }} as pool_start_mode,
        coalesce(
            {{ chrom.json_number('r.value', 'pooling.start.mau') }},
            {{ chrom.json_number('r.value', 'pooling.start.percent') }}
        ) as pool_start_value,
        {{ chrom.json_text('r.value', 'pooling.end.mode') }} as pool_end_mode,
        coalesce(
            {{ chrom.json_number('r.value', 'pooling.end.mau') }},
            {{ chrom.json_number('r.value', 'pooling.end.percent') }}
        ) as pool_end_value,
        {{ chrom.json_number('r.value', 'step_yield.min') }} as step_yield_min,
        {{ chrom.json_number('r.value', 'step_yield.max') }} as step_yield_max,
        -- engineers' say on the golden envelope: batch ids as a JSON array (null: none)
        {{ chrom.json_serialized('r.value', 'envelope.pin') }} as envelope_pin,
        {{ chrom.json_serialized('r.value', 'envelope.exclude') }} as envelope_exclude,
        -- how the recipe's envelope judges (null: the platform's defaults)
        {{ chrom.json_number('r.value', 'envelope.min_batches') }} as envelope_min_batches,
        {{ chrom.json_number('r.value', 'envelope.window') }} as envelope_window,
        {{ chrom.json_number('r.value', 'envelope.z_limit') }} as envelope_z_limit,
        {{ chrom.json_number('r.value', 'envelope.persistence') }} as envelope_persistence,
        -- how the recipe's multivariate model judges (null: the platform's defaults)
        {{ chrom.json_number('r.value', 'multivariate.min_batches') }} as multivariate_min_batches,
        {{ chrom.json_number('r.value', 'multivariate.mature_batches') }}
            as multivariate_mature_batches,
        {{ chrom.json_number('r.value', 'multivariate.batch_false_alarm') }}
            as multivariate_batch_false_alarm,
        {{ chrom.json_number('r.value', 'multivariate.persistence') }} as multivariate_persistence,
        {{ chrom.json_number('r.value', 'multivariate.window') }} as multivariate_window,
        {{ chrom.json_number('r.value', 'multivariate.refit_every') }} as multivariate_refit_every,
        -- the load breakthrough rule (null: the platform's defaults)
        {{ chrom.json_number('r.value', 'breakthrough.percent_of_feed') }}
            as breakthrough_percent_of_feed,
        {{ chrom.json_number('r.value', 'breakthrough.noise_k') }} as breakthrough_noise_k
    from latest_recipes,
        {{ chrom.json_array_elements(chrom.json_value('raw', 'recipes'), 'r') }}
)

select * from recipes
