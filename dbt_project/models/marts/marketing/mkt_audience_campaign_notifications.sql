{#- Audience (Hightouch): who to notify of each running campaign — the campaign's members with an email
    address, one row per campaign and email. The publish_campaigns workflow triggers its sync when it
    publishes a campaign. -#}
with running as (
    select campaign_id, campaign_name, channel, started_on, ended_on
    from {{ ref('stg_landing__campaigns') }}
    where started_on <= current_date and ended_on >= current_date
),

people as (
    select lead_id as person_id, email, first_name from {{ ref('stg_salesforce__leads') }}
    where not is_converted and email is not null
    union all
    select contact_id as person_id, email, first_name from {{ ref('stg_salesforce__contacts') }}
    where email is not null
),

recipients as (
    select distinct running.campaign_id, running.campaign_name, running.started_on, people.email,
        people.first_name
    from running
    inner join {{ ref('act_salesforce_campaign_members') }} as members
        on members.campaign_id = running.campaign_id
    inner join people on people.person_id = coalesce(members.LeadId, members.ContactId)
    qualify row_number() over (partition by running.campaign_id, people.email order by people.first_name) = 1
)

select
    {{ dbt.concat(["campaign_id", "':'", "email"]) }} as notification_key,
    campaign_id,
    campaign_name,
    started_on,
    email,
    first_name
from recipients
