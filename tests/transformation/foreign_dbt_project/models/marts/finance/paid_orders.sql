select p.order_id, p.amount, o.customer_id
from {{ ref('int_order_payments') }} as p
join {{ ref('stg_orders') }} as o using (order_id)
