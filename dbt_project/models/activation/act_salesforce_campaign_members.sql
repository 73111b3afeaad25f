{#- Each campaign's audience as Salesforce CampaignMembers (inserted once, keyed by member_key): prospects
    (open Leads with an email) for every channel, and customers (Contacts with an email) for the email and
    events channels. The Campaign is named by its Campaign_Id__c, so the member needs no Salesforce Id of
    the Campaign. Sent by the publish_campaigns workflow, one campaign per run. -#}
with campaigns as (  -- those still to run: an ended campaign's audience is not sent any more
    select campaign_id, channel from {{ ref('stg_landing__campaigns') }} where ended_on >= current_date
),

leads as (
    select lead_id from {{ ref('stg_salesforce__leads') }} where not is_converted and email is not null
),

contacts as (
    select contact_id from {{ ref('stg_salesforce__contacts') }} where email is not null
),

members as (
    select campaigns.campaign_id, leads.lead_id, cast(null as varchar) as contact_id
    from campaigns
    cross join leads
    union all
    select campaigns.campaign_id, cast(null as varchar) as lead_id, contacts.contact_id
    from campaigns
    cross join contacts
    where campaigns.channel in ('email', 'events')
)

select
    {{ dbt.concat(["campaign_id", "':'", "coalesce(lead_id, contact_id)"]) }} as member_key,
    campaign_id,
    {{ dbt.concat(["campaign_id", "':'", "coalesce(lead_id, contact_id)"]) }} as Platform_Key__c,
    campaign_id as campaign_ref,
    lead_id as LeadId,
    contact_id as ContactId,
    'Sent' as Status
from members
