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
        {{ to_ts('updated_at') }} as updated_at,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'subscriptions') }}
)

select * from typed
{{ latest_landing_row('subscription_id', ['updated_at']) }}
