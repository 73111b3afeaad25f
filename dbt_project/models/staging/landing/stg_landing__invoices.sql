with typed as (
    select
        {{ to_str('invoice_id') }} as invoice_id,
        {{ to_str('subscription_id') }} as subscription_id,
        {{ to_str('workspace_id') }} as workspace_id,
        {{ to_num('amount') }} as amount,
        {{ to_str('status') }} as status,
        {{ to_ts('issued_at') }} as issued_at,
        {{ to_ts('due_at') }} as due_at,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'invoices') }}
)

select * from typed
{{ latest_landing_row('invoice_id') }}
