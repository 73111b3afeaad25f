{#- Custom schemas are exactly staging, finance, marketing, sales, activation — no target-schema prefix —
    and every schema gets PLATFORM_SCHEMA_PREFIX ('' locally and in prod, 'ci_<branch>_' in ci). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set prefix = env_var('PLATFORM_SCHEMA_PREFIX', '') -%}
    {%- if custom_schema_name is none -%}
        {{ prefix ~ target.schema }}
    {%- else -%}
        {{ prefix ~ (custom_schema_name | trim) }}
    {%- endif -%}
{%- endmacro %}
