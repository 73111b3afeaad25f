{% macro cents_to_dollars(column) -%}
    round(cast({{ column }} as decimal(18, 2)) / 100, 2)
{%- endmacro %}
