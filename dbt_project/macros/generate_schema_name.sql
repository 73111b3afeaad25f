{#- Custom schemas are exactly staging, finance, marketing, sales, activation — no target-schema prefix —
    and every schema gets PLATFORM_SCHEMA_PREFIX ('' locally and in prod, 'ci_<branch>_' in ci). A resource
    without a custom schema lands in the target's schema, which profiles.yml already prefixes in ci. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ env_var('PLATFORM_SCHEMA_PREFIX', '') ~ (custom_schema_name | trim) }}
    {%- endif -%}
{%- endmacro %}
