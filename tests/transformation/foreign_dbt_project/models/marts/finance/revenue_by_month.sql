select
    cast(date_trunc('month', paid_at) as date) as month,
    sum(amount) * {{ var('revenue_factor', 1) }} as revenue
from {{ ref('payments_daily') }}
group by 1
