{#- Renewal Opportunities to create (by Workspace_Id__c): paying workspaces whose Account has no open
    Opportunity and no platform Opportunity yet. They close on the next anniversary of the first payment
    and are worth the workspace's current ARR. -#}
with billing as (
    select * from {{ ref('int_workspace_billing') }} where is_paying
),

opportunities as (
    select * from {{ ref('stg_salesforce__opportunities') }}
),

candidates as (
    select
        billing.workspace_id,
        accounts.account_id,
        accounts.account_name,
        billing.arr,
        billing.first_paid_at,
        {{ dbt.datediff('billing.first_paid_at', 'billing.as_of', 'month') }} as months_paid
    from billing
    inner join {{ ref('stg_salesforce__accounts') }} as accounts on accounts.workspace_id = billing.workspace_id
    where not exists (
            select 1 from opportunities
            where opportunities.account_id = accounts.account_id
                and opportunities.stage_name not in ('Closed Won', 'Closed Lost')
        )
        and not exists (
            select 1 from opportunities where opportunities.workspace_id = billing.workspace_id
        )
)

select
    workspace_id,
    workspace_id as Workspace_Id__c,
    {{ dbt.concat(["account_name", "' - Renewal'"]) }} as Name,
    account_id as AccountId,
    'Qualification' as StageName,
    cast({{ dbt.dateadd('month', 'cast(12 * (floor(months_paid / 12) + 1) as integer)', 'first_paid_at') }} as date) as CloseDate,
    arr as Amount,
    'Existing Customer - Renewal' as Type
from candidates
