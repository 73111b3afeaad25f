with typed as (
    select
        {{ to_str('event_id') }} as event_id,
        {{ to_str('workspace_id') }} as workspace_id,
        {{ to_str('user_id') }} as user_id,
        {{ to_str('event_type') }} as event_type,
        {{ to_num('quantity', 'integer') }} as quantity,
        {{ to_ts('occurred_at') }} as occurred_at,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'usage_events') }}
)

select * from typed
{{ latest_landing_row('event_id') }}
