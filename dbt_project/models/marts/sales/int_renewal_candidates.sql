{{ config(materialized='ephemeral') }}
{#- Paying workspaces that get a renewal Opportunity from the platform: their Account has no open
    Opportunity and the workspace no platform Opportunity yet. The territory comes from the Account's
    billing country (else the workspace's country) through the sales_territories seed. -#}
with billing as (
    select * from {{ ref('int_workspace_billing') }} where is_paying
),

opportunities as (
    select * from {{ ref('stg_salesforce__opportunities') }}
)

select
    billing.workspace_id,
    accounts.account_id,
    accounts.account_name,
    billing.arr,
    billing.first_paid_at,
    billing.as_of,
    {{ dbt.datediff('billing.first_paid_at', 'billing.as_of', 'month') }} as months_paid,
    territories.territory
from billing
inner join {{ ref('stg_salesforce__accounts') }} as accounts on accounts.workspace_id = billing.workspace_id
left join {{ ref('stg_landing__workspaces') }} as workspaces on workspaces.workspace_id = billing.workspace_id
left join {{ ref('sales_territories') }} as territories
    on territories.country = upper(coalesce(accounts.billing_country, workspaces.country))
where not exists (
        select 1 from opportunities
        where opportunities.account_id = accounts.account_id
            and opportunities.stage_name not in ('Closed Won', 'Closed Lost')
    )
    and not exists (
        select 1 from opportunities where opportunities.workspace_id = billing.workspace_id
    )
