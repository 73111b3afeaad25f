{#- Follow-up Tasks for account managers, upserted by Platform_Key__c and only created once: a Task
    whose key Salesforce already has is left alone, so reps' updates stand.
    - invoice_past_due (to the Account owner): an open invoice past its due date at the billing clock;
    - usage_drop (to the Account owner): a paying workspace whose usage in the last 14 days fell below half
      of the 14 days before (with at least var usage_drop_min_units before), once per workspace and day of
      the data clock;
    - renewal_follow_up (to the renewal Opportunity's owner): once per renewal Opportunity the platform
      creates, for the account manager assigned to it — or whoever owns it in Salesforce by now. -#}
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

renewal_follow_up as (
    select
        {{ dbt.concat(["'renewal_follow_up:'", "owners.workspace_id"]) }} as task_key,
        {{ dbt.concat(["'Plan the renewal of '", "renewal_accounts.account_name"]) }} as subject,
        renewal_accounts.account_id,
        coalesce(in_salesforce.owner_id, owners.assigned_to) as owner_id,
        cast(billing.as_of as date) as as_of_date,
        'Normal' as priority,
        {{ dbt.concat([
            "'You own the new renewal opportunity of '", "renewal_accounts.account_name",
            "': reach out before it closes.'"
        ]) }} as description
    from {{ ref('sales_opportunity_owners') }} as owners
    inner join {{ ref('stg_salesforce__accounts') }} as renewal_accounts
        on renewal_accounts.workspace_id = owners.workspace_id
    inner join billing on billing.workspace_id = owners.workspace_id
    left join {{ ref('stg_salesforce__opportunities') }} as in_salesforce
        on in_salesforce.workspace_id = owners.workspace_id
    -- Being created now, or created and still open: a closed renewal needs no follow-up any more.
    where (
            in_salesforce.opportunity_id is null
            and owners.workspace_id in (select workspace_id from {{ ref('int_renewal_candidates') }})
        )
        or in_salesforce.stage_name not in ('Closed Won', 'Closed Lost')
),

tasks as (
    select * from past_due
    union all
    select * from usage_drop
    union all
    select * from renewal_follow_up
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
