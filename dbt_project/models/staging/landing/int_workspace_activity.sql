{#- Product activity per workspace, measured against the data's own clock (the latest usage event), so
    results are reproducible for any snapshot of the data. Shared by marketing, sales and activation. -#}
with events as (
    select * from {{ ref('stg_landing__usage_events') }}
),

clock as (
    select max(occurred_at) as as_of from events
),

windowed as (
    select
        events.workspace_id,
        events.user_id,
        events.quantity,
        events.occurred_at,
        clock.as_of,
        {{ dbt.datediff('events.occurred_at', 'clock.as_of', 'day') }} as days_ago
    from events
    cross join clock
)

select
    workspace_id,
    max(as_of) as as_of,
    max(occurred_at) as last_active_at,
    count(distinct case when days_ago < 30 then user_id end) as active_users_30d,
    sum(case when days_ago < 30 then quantity else 0 end) as usage_30d,
    sum(case when days_ago < 14 then quantity else 0 end) as usage_last_14d,
    sum(case when days_ago >= 14 and days_ago < 28 then quantity else 0 end) as usage_prior_14d
from windowed
group by workspace_id
