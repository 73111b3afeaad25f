with typed as (
    select
        {{ to_str('campaign_id') }} as campaign_id,
        {{ to_str('name') }} as campaign_name,
        {{ to_str('channel') }} as channel,
        {{ to_date('started_on') }} as started_on,
        {{ to_date('ended_on') }} as ended_on,
        {{ to_num('budget') }} as budget,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'campaigns') }}
)

select * from typed
{{ latest_landing_row('campaign_id') }}
