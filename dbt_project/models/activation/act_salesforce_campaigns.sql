{#- Salesforce Campaigns, upserted by Campaign_Id__c. Only the publish_campaigns workflow sends them, one
    campaign per run on the day it starts (platform_assets/defs/workflows/declared/publish_campaigns.yaml). -#}
select
    campaign_id,
    campaign_id as Campaign_Id__c,
    campaign_name as Name,
    case channel
        when 'email' then 'Email'
        when 'events' then 'Conference'
        when 'content' then 'Webinar'
        else 'Advertisement'
    end as Type,
    'In Progress' as Status,
    started_on as StartDate,
    ended_on as EndDate,
    budget as BudgetedCost,
    true as IsActive
from {{ ref('stg_landing__campaigns') }}
where ended_on >= started_on
