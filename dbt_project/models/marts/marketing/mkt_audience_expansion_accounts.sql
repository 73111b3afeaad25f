{#- Audience (Hightouch): paying workspaces ready to expand — near their seat limit (active users over
    the last 30 days at least var expansion_seat_utilization of paid seats) or using the product heavily
    (at least var expansion_usage_30d units in 30 days). -#}
with candidates as (
    select
        billing.workspace_id,
        workspaces.workspace_name,
        workspaces.domain,
        billing.current_plan as plan,
        billing.paid_seats as seats,
        billing.mrr,
        coalesce(activity.active_users_30d, 0) as active_users_30d,
        coalesce(activity.usage_30d, 0) as usage_30d,
        cast(coalesce(activity.active_users_30d, 0) as decimal(18, 4))
            / nullif(billing.paid_seats, 0) as seat_utilization
    from {{ ref('int_workspace_billing') }} as billing
    left join {{ ref('stg_landing__workspaces') }} as workspaces
        on workspaces.workspace_id = billing.workspace_id
    left join {{ ref('int_workspace_activity') }} as activity on activity.workspace_id = billing.workspace_id
    where billing.is_paying
)

select
    *,
    case
        when seat_utilization >= {{ var('expansion_seat_utilization', 0.8) }} then 'seat_limit'
        else 'high_usage'
    end as expansion_reason
from candidates
where seat_utilization >= {{ var('expansion_seat_utilization', 0.8) }}
    or usage_30d >= {{ var('expansion_usage_30d', 500) }}
