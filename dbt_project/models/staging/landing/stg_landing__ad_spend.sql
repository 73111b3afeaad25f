with typed as (
    select
        {{ to_str('spend_id') }} as spend_id,
        {{ to_str('campaign_id') }} as campaign_id,
        {{ to_date('spend_date') }} as spend_date,
        {{ to_num('impressions', 'integer') }} as impressions,
        {{ to_num('clicks', 'integer') }} as clicks,
        {{ to_num('spend') }} as spend,
        {{ to_str('_source_file') }} as _source_file,
        {{ to_num('_source_line', 'integer') }} as _source_line,
        _sdc_batched_at
    from {{ source('raw_landing', 'ad_spend') }}
)

select * from typed
{{ latest_landing_row('spend_id') }}
