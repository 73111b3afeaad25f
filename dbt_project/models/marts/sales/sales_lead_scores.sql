{#- A score per sign-up: product usage of its workspace (0-100) and company fit by size (0-40),
    blended into lead_score (0-100) and a grade. These usage figures are what Salesforce Leads show. -#}
with signups as (
    select * from {{ ref('stg_landing__signups') }}
),

scored as (
    select
        signups.signup_id,
        signups.user_id,
        signups.workspace_id,
        signups.email,
        coalesce(signups.company, workspaces.workspace_name) as company,
        workspaces.employee_count,
        cast(coalesce(activity.active_users_30d, 0) as integer) as active_users,
        coalesce(activity.usage_30d, 0) as usage_30d,
        activity.last_active_at,
        cast(least(100, 15 * coalesce(activity.active_users_30d, 0)
            + floor(coalesce(activity.usage_30d, 0) / 20.0)) as integer) as product_usage_score,
        case
            when workspaces.employee_count >= 1000 then 40
            when workspaces.employee_count >= 200 then 30
            when workspaces.employee_count >= 50 then 20
            else 10
        end as fit_score
    from signups
    left join {{ ref('stg_landing__workspaces') }} as workspaces on workspaces.workspace_id = signups.workspace_id
    left join {{ ref('int_workspace_activity') }} as activity on activity.workspace_id = signups.workspace_id
)

select
    *,
    cast(round(0.7 * product_usage_score + 0.75 * fit_score) as integer) as lead_score,
    case
        when 0.7 * product_usage_score + 0.75 * fit_score >= 70 then 'A'
        when 0.7 * product_usage_score + 0.75 * fit_score >= 40 then 'B'
        else 'C'
    end as lead_grade
from scored
