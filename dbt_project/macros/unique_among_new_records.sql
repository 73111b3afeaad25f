{#- Fails for each value of `column_name` (compared lower-case and trimmed) held by more than one of the
    model's new records, the rows where the boolean column `new_flag` is true (records the sync creates
    rather than updates), e.g. two new Leads for one email. Existing records are not compared: they are
    updated by their key, never created again. -#}
{% test unique_among_new_records(model, column_name, new_flag) %}
select lower(trim({{ column_name }})) as duplicated_value, count(*) as new_records
from {{ model }}
where {{ new_flag }} and {{ column_name }} is not null
group by lower(trim({{ column_name }}))
having count(*) > 1
{% endtest %}
