with typed as (
    select
        {{ to_str('user_id') }} as user_id,
        {{ to_str('workspace_id') }} as workspace_id,
        lower({{ to_str('email') }}) as email,
        {{ to_str('first_name') }} as first_name,
        {{ to_str('last_name') }} as last_name,
        {{ to_str('title') }} as title,
        {{ to_str('role') }} as role,
        {{ to_ts('created_at') }} as created_at,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'users') }}
)

select * from typed
{{ latest_landing_row('user_id') }}
