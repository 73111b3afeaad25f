-- Crosses domains: finance's paid_orders against core's stg_payments. Runs once, in finance.
select 1
from (select sum(amount) as total from {{ ref('paid_orders') }}) as orders_side
cross join (select sum(amount) as total from {{ ref('stg_payments') }}) as payments_side
where orders_side.total <> payments_side.total
