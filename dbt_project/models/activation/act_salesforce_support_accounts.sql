{#- Paying workspaces as Accounts of the support org (upsert by Workspace_Id__c): the support team sees
    each customer's name, plan and ARR. -#}
with billing as (
    select * from {{ ref('int_workspace_billing') }} where is_paying
)

select
    billing.workspace_id,
    billing.workspace_id as Workspace_Id__c,
    workspaces.workspace_name as Name,
    billing.current_plan as Plan__c,
    billing.arr as ARR__c
from billing
inner join {{ ref('stg_landing__workspaces') }} as workspaces on workspaces.workspace_id = billing.workspace_id
