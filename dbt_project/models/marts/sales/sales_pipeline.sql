{#- The Salesforce pipeline with account, owner and the workspace's current recurring revenue. -#}
select
    opportunities.opportunity_id,
    opportunities.opportunity_name,
    opportunities.account_id,
    accounts.account_name,
    coalesce(opportunities.workspace_id, accounts.workspace_id) as workspace_id,
    opportunities.owner_id,
    {{ dbt.concat(["coalesce(owners.first_name, '')", "' '", "owners.last_name"]) }} as owner_name,
    opportunities.stage_name,
    opportunities.opportunity_type,
    opportunities.amount,
    opportunities.close_date,
    opportunities.stage_name in ('Closed Won', 'Closed Lost') as is_closed,
    opportunities.stage_name = 'Closed Won' as is_won,
    coalesce(billing.mrr, 0) as workspace_mrr,
    opportunities.workspace_id is not null as created_by_platform
from {{ ref('stg_salesforce__opportunities') }} as opportunities
left join {{ ref('stg_salesforce__accounts') }} as accounts on accounts.account_id = opportunities.account_id
left join {{ ref('stg_salesforce__users') }} as owners on owners.salesforce_user_id = opportunities.owner_id
left join {{ ref('int_workspace_billing') }} as billing
    on billing.workspace_id = coalesce(opportunities.workspace_id, accounts.workspace_id)
