{#- Monthly recurring revenue per workspace: a subscription counts in every month from the month it
    started through the last full month before it was canceled. Trials count nothing. Months run up to
    the month of the latest subscription change in the data. -#}
with recursive subscriptions as (
    select
        workspace_id,
        plan,
        seats,
        monthly_amount,
        cast({{ dbt.date_trunc('month', 'started_at') }} as date) as first_month,
        cast({{ dbt.date_trunc('month', 'canceled_at') }} as date) as canceled_month
    from {{ ref('stg_landing__subscriptions') }}
    where status <> 'trialing' and monthly_amount > 0
),

bounds as (
    select
        min(first_month) as first_month,
        cast({{ dbt.date_trunc('month', 'max(as_of)') }} as date) as last_month
    from subscriptions
    cross join (select max(as_of) as as_of from {{ ref('int_workspace_billing') }}) as clock
),

months as (
    select first_month as month_start from bounds
    union all
    select cast({{ dbt.dateadd('month', 1, 'months.month_start') }} as date)
    from months
    cross join bounds
    where months.month_start < bounds.last_month
),

monthly as (
    select
        months.month_start,
        subscriptions.workspace_id,
        max(subscriptions.plan) as plan,
        count(*) as active_subscriptions,
        sum(subscriptions.seats) as seats,
        sum(subscriptions.monthly_amount) as mrr
    from months
    inner join subscriptions
        on subscriptions.first_month <= months.month_start
        and (subscriptions.canceled_month is null or subscriptions.canceled_month > months.month_start)
    group by months.month_start, subscriptions.workspace_id
)

select
    {{ dbt.concat(["monthly.workspace_id", "'|'", "cast(monthly.month_start as varchar)"]) }} as mrr_key,
    monthly.month_start,
    monthly.workspace_id,
    monthly.plan,
    monthly.active_subscriptions,
    monthly.seats,
    monthly.mrr,
    monthly.mrr * 12 as arr,
    monthly.mrr - coalesce(previous.mrr, 0) as mrr_change,
    case
        when previous.mrr is null then 'new'
        when monthly.mrr > previous.mrr then 'expansion'
        when monthly.mrr < previous.mrr then 'contraction'
        else 'flat'
    end as movement
from monthly
left join monthly as previous
    on previous.workspace_id = monthly.workspace_id
    and previous.month_start = cast({{ dbt.dateadd('month', -1, 'monthly.month_start') }} as date)
