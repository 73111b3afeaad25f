{#- ARR and plan to write onto existing Accounts (by Workspace_Id__c), only where Salesforce shows
    something else. Workspaces without an Account are left to the lead flow. -#}
with billing as (
    select * from {{ ref('int_workspace_billing') }}
)

select
    billing.workspace_id,
    billing.workspace_id as Workspace_Id__c,
    billing.arr as ARR__c,
    billing.current_plan as Plan__c
from billing
inner join {{ ref('stg_salesforce__accounts') }} as accounts on accounts.workspace_id = billing.workspace_id
where accounts.arr is distinct from billing.arr
    or accounts.plan is distinct from billing.current_plan
