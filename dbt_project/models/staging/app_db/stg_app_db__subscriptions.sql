{#- Tagged app_db: the source exists only where PLATFORM_APP_DB_URL is set; Dagster leaves these models
    out everywhere else. The app database is replicated, so the latest updated_at wins. -#}
with typed as (
    select
        {{ to_str('subscription_id') }} as subscription_id,
        {{ to_str('workspace_id') }} as workspace_id,
        {{ to_str('plan') }} as plan,
        {{ to_num('seats', 'integer') }} as seats,
        {{ to_num('monthly_amount') }} as monthly_amount,
        {{ to_str('status') }} as status,
        {{ to_ts('started_at') }} as started_at,
        {{ to_ts('canceled_at') }} as canceled_at,
        {{ to_ts('updated_at') }} as updated_at
    from {{ source('raw_app_db', 'subscriptions') }}
)

select * from typed
qualify row_number() over (partition by subscription_id order by updated_at desc nulls last) = 1
