{#- Follow-up Tasks for account managers (the Account owner), upserted by Platform_Key__c and only
    created once: a Task whose key Salesforce already has is left alone, so reps' updates stand.
    - invoice_past_due: an open invoice past its due date at the billing clock;
    - usage_drop: a paying workspace whose usage in the last 14 days fell below half of the 14 days before
      (with at least var usage_drop_min_units before), once per workspace and day of the data clock. -#}
with accounts as (
    select * from {{ ref('stg_salesforce__accounts') }} where owner_id is not null
),

billing as (
    select * from {{ ref('int_workspace_billing') }}
),

past_due as (
    select
        {{ dbt.concat(["'invoice_past_due:'", "invoices.invoice_id"]) }} as task_key,
        {{ dbt.concat(["'Invoice '", "invoices.invoice_id", "' is past due'"]) }} as subject,
        accounts.account_id,
        accounts.owner_id,
        cast(billing.as_of as date) as as_of_date,
        'High' as priority,
        {{ dbt.concat([
            "'Invoice '", "invoices.invoice_id", "' of USD '", "cast(invoices.amount as varchar)",
            "' was due on '", "cast(cast(invoices.due_at as date) as varchar)", "' and is unpaid.'"
        ]) }} as description
    from {{ ref('stg_landing__invoices') }} as invoices
    inner join accounts on accounts.workspace_id = invoices.workspace_id
    inner join billing on billing.workspace_id = invoices.workspace_id
    where invoices.status = 'open' and invoices.due_at < billing.as_of
),

usage_drop as (
    select
        {{ dbt.concat(["'usage_drop:'", "activity.workspace_id", "':'",
                       "cast(cast(activity.as_of as date) as varchar)"]) }} as task_key,
        {{ dbt.concat(["'Usage dropped at '", "accounts.account_name"]) }} as subject,
        accounts.account_id,
        accounts.owner_id,
        cast(activity.as_of as date) as as_of_date,
        'Normal' as priority,
        {{ dbt.concat([
            "'Product usage fell from '", "cast(activity.usage_prior_14d as varchar)",
            "' to '", "cast(activity.usage_last_14d as varchar)", "' units over the last 14 days.'"
        ]) }} as description
    from {{ ref('int_workspace_activity') }} as activity
    inner join billing on billing.workspace_id = activity.workspace_id and billing.is_paying
    inner join accounts on accounts.workspace_id = activity.workspace_id
    where activity.usage_prior_14d >= {{ var('usage_drop_min_units', 20) }}
        and activity.usage_last_14d < 0.5 * activity.usage_prior_14d
),

tasks as (
    select * from past_due
    union all
    select * from usage_drop
)

select
    task_key,
    task_key as Platform_Key__c,
    subject as Subject,
    account_id as WhatId,
    owner_id as OwnerId,
    cast({{ dbt.dateadd('day', 2, 'as_of_date') }} as date) as ActivityDate,
    'Not Started' as Status,
    priority as Priority,
    description as Description
from tasks
where not exists (
    select 1 from {{ ref('stg_salesforce__tasks') }} as existing where existing.platform_key = tasks.task_key
)
