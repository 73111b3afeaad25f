select
    id as payment_id,
    order_id,
    method,
    {{ shop_utils.cents_to_dollars('amount_cents') }} as amount,
    cast(paid_at as date) as paid_at
from {{ ref('raw_payments') }}
