with typed as (
    select
        {{ to_str('payment_id') }} as payment_id,
        {{ to_str('invoice_id') }} as invoice_id,
        {{ to_num('amount') }} as amount,
        {{ to_str('method') }} as method,
        {{ to_ts('paid_at') }} as paid_at,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'payments') }}
)

select * from typed
{{ latest_landing_row('payment_id') }}
