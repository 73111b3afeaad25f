{#- Renewal Opportunities to create (by Workspace_Id__c): paying workspaces whose Account has no open
    Opportunity and no platform Opportunity yet (int_renewal_candidates). They close on the next
    anniversary of the first payment, are worth the workspace's current ARR and are owned by the account
    manager sales_opportunity_owners assigned (round-robin in the account's territory); a workspace whose
    territory has no account manager yet waits until it has one. -#}
select
    candidates.workspace_id,
    candidates.workspace_id as Workspace_Id__c,
    {{ dbt.concat(["candidates.account_name", "' - Renewal'"]) }} as Name,
    candidates.account_id as AccountId,
    'Qualification' as StageName,
    cast({{ dbt.dateadd(
        'month', 'cast(12 * (floor(candidates.months_paid / 12) + 1) as integer)', 'candidates.first_paid_at'
    ) }} as date) as CloseDate,
    candidates.arr as Amount,
    'Existing Customer - Renewal' as Type,
    owners.assigned_to as OwnerId
from {{ ref('int_renewal_candidates') }} as candidates
inner join {{ ref('sales_opportunity_owners') }} as owners on owners.workspace_id = candidates.workspace_id
