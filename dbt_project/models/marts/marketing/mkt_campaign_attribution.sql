{#- Campaign performance with first-touch attribution: each workspace belongs to the campaign of its
    first attributed sign-up; its current recurring revenue is credited to that campaign. -#}
with spend as (
    select
        campaign_id,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from {{ ref('stg_landing__ad_spend') }}
    group by campaign_id
),

signups as (
    select * from {{ ref('stg_landing__signups') }} where campaign_id is not null
),

first_touch as (
    select workspace_id, campaign_id
    from signups
    qualify row_number() over (partition by workspace_id order by signed_up_at, signup_id) = 1
),

conversions as (
    select
        first_touch.campaign_id,
        count(*) as converted_workspaces,
        sum(billing.mrr) as attributed_mrr
    from first_touch
    inner join {{ ref('int_workspace_billing') }} as billing
        on billing.workspace_id = first_touch.workspace_id and billing.is_paying
    group by first_touch.campaign_id
),

signup_counts as (
    select campaign_id, count(*) as signups, count(distinct workspace_id) as signup_workspaces
    from signups
    group by campaign_id
)

select
    campaigns.campaign_id,
    campaigns.campaign_name,
    campaigns.channel,
    campaigns.started_on,
    campaigns.ended_on,
    campaigns.budget,
    coalesce(spend.spend, 0) as spend,
    coalesce(spend.impressions, 0) as impressions,
    coalesce(spend.clicks, 0) as clicks,
    coalesce(signup_counts.signups, 0) as signups,
    coalesce(signup_counts.signup_workspaces, 0) as signup_workspaces,
    coalesce(conversions.converted_workspaces, 0) as converted_workspaces,
    coalesce(conversions.attributed_mrr, 0) as attributed_mrr,
    coalesce(spend.spend, 0) / nullif(signup_counts.signups, 0) as cost_per_signup,
    coalesce(spend.spend, 0) / nullif(conversions.converted_workspaces, 0) as cost_per_conversion
from {{ ref('stg_landing__campaigns') }} as campaigns
left join spend on spend.campaign_id = campaigns.campaign_id
left join signup_counts on signup_counts.campaign_id = campaigns.campaign_id
left join conversions on conversions.campaign_id = campaigns.campaign_id
