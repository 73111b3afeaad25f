{#- Raw tables arrive as text from files and APIs; these macros type them the same way on DuckDB and
    Snowflake. Empty strings are NULL. A value that does not parse fails the model (nothing is dropped). -#}

{% macro to_str(column) -%}
    nullif(trim(cast({{ column }} as varchar)), '')
{%- endmacro %}

{% macro to_num(column, type='decimal(18, 2)') -%}
    cast({{ to_str(column) }} as {{ type }})
{%- endmacro %}

{% macro to_bool(column) -%}
    coalesce(cast({{ to_str(column) }} as boolean), false)
{%- endmacro %}

{% macro to_date(column) -%}
    cast({{ to_ts(column) }} as date)
{%- endmacro %}

{#- ISO-8601 text (with Z, +0000 or no offset) to a UTC timestamp without time zone. -#}
{% macro to_ts(column) -%}
    {{ return(adapter.dispatch('to_ts', 'platform')(column)) }}
{%- endmacro %}

{% macro default__to_ts(column) -%}
    cast(convert_timezone('UTC', to_timestamp_tz({{ to_str(column) }})) as timestamp_ntz)
{%- endmacro %}

{% macro duckdb__to_ts(column) -%}
    cast(cast({{ to_str(column) }} as timestamptz) at time zone 'UTC' as timestamp)
{%- endmacro %}

{#- Keep the latest version of each key in an append-only landing table: the newest business timestamp
    first (where the stream has one), then the latest file drop and line, then the latest load. -#}
{% macro latest_landing_row(key, newest_first=[]) -%}
    qualify row_number() over (
        partition by {{ key }}
        order by
            {%- for column in newest_first %} {{ column }} desc nulls last,{% endfor %}
            _source_file desc, _source_line desc, _sdc_batched_at desc
    ) = 1
{%- endmacro %}

{#- Salesforce extracts are incremental: keep each record's latest version, then drop deleted ones. -#}
{% macro latest_salesforce_row() -%}
    qualify row_number() over (partition by id order by system_modstamp desc nulls last) = 1
{%- endmacro %}
