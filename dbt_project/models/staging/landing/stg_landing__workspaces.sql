with typed as (
    select
        {{ to_str('workspace_id') }} as workspace_id,
        {{ to_str('name') }} as workspace_name,
        lower({{ to_str('domain') }}) as domain,
        {{ to_str('industry') }} as industry,
        {{ to_num('employee_count', 'integer') }} as employee_count,
        {{ to_str('country') }} as country,
        {{ to_str('plan') }} as plan,
        {{ to_ts('created_at') }} as created_at,
        {{ to_ts('updated_at') }} as updated_at,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'workspaces') }}
)

select * from typed
{{ latest_landing_row('workspace_id', ['updated_at']) }}
