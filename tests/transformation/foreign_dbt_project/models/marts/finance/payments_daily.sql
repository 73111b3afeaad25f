{{ config(materialized='incremental', unique_key='paid_at') }}
select paid_at, sum(amount) as amount, count(*) as payments
from {{ ref('stg_payments') }}
{% if is_incremental() %}
where paid_at >= (select max(paid_at) from {{ this }})
{% endif %}
group by paid_at
