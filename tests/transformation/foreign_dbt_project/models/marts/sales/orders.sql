{{ config(materialized='incremental', unique_key='order_id') }}
select o.order_id, o.customer_id, o.ordered_at, o.status, coalesce(p.amount, 0) as amount
from {{ ref('stg_orders') }} as o
left join {{ ref('int_order_payments') }} as p using (order_id)
{% if is_incremental() %}
where o.ordered_at >= (select coalesce(max(ordered_at), date '1900-01-01') from {{ this }})
{% endif %}
