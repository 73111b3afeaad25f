{#- Audience (Hightouch): users of workspaces whose current subscription is a trial, one row per email
    (the most recently created user where an email is in several workspaces). -#}
with trials as (
    select * from {{ ref('int_workspace_billing') }} where current_status = 'trialing'
),

users as (
    select * from {{ ref('stg_landing__users') }} where email is not null
),

signups as (
    select user_id, utm_source
    from {{ ref('stg_landing__signups') }}
    qualify row_number() over (partition by user_id order by signed_up_at, signup_id) = 1
)

select
    users.email,
    users.user_id,
    users.first_name,
    users.last_name,
    users.workspace_id,
    workspaces.workspace_name,
    trials.current_plan as plan,
    subscriptions.started_at as trial_started_at,
    coalesce(activity.active_users_30d, 0) as active_users_30d,
    coalesce(activity.usage_30d, 0) as usage_30d,
    activity.last_active_at,
    signups.utm_source
from users
inner join trials on trials.workspace_id = users.workspace_id
inner join {{ ref('stg_landing__subscriptions') }} as subscriptions
    on subscriptions.subscription_id = trials.current_subscription_id
left join {{ ref('stg_landing__workspaces') }} as workspaces on workspaces.workspace_id = users.workspace_id
left join {{ ref('int_workspace_activity') }} as activity on activity.workspace_id = users.workspace_id
left join signups on signups.user_id = users.user_id
qualify row_number() over (partition by users.email order by users.created_at desc, users.user_id desc) = 1
