{#- Billing state per workspace: what it pays now and its current plan, as of the billing data's clock
    (the latest subscription change). Paying = active or past_due; trials and cancellations pay nothing. -#}
with subscriptions as (
    select * from {{ ref('stg_landing__subscriptions') }}
),

clock as (
    select max(coalesce(updated_at, started_at)) as as_of from subscriptions
),

current_subscription as (
    select workspace_id, subscription_id, plan, status
    from subscriptions
    qualify row_number() over (
        partition by workspace_id order by started_at desc nulls last, updated_at desc nulls last
    ) = 1
),

paying as (
    select
        workspace_id,
        sum(monthly_amount) as mrr,
        sum(seats) as seats,
        min(started_at) as first_paid_at
    from subscriptions
    where status in ('active', 'past_due')
    group by workspace_id
)

select
    current_subscription.workspace_id,
    current_subscription.subscription_id as current_subscription_id,
    current_subscription.plan as current_plan,
    current_subscription.status as current_status,
    coalesce(paying.mrr, 0) as mrr,
    coalesce(paying.mrr, 0) * 12 as arr,
    coalesce(paying.seats, 0) as paid_seats,
    paying.first_paid_at,
    paying.workspace_id is not null as is_paying,
    clock.as_of
from current_subscription
left join paying on paying.workspace_id = current_subscription.workspace_id
cross join clock
