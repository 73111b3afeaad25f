{#- Leads to upsert (by Signup_Id__c): sign-ups Salesforce does not know yet — no Lead with that
    sign-up or email, no Contact for that user or email, no Account for the workspace — plus platform
    Leads not yet converted whose usage fields changed. Names, company, title and email are the sign-up's:
    a rep's later edit of them in Salesforce wins by the sync's conflict policy (salesforce_wins), not here.
    Emails compare lower-case and trimmed; of several new sign-ups with one email (in one batch too), only
    the earliest (signed_up_at, then signup_id) becomes a Lead, so one person never gets two Leads. -#}
with signups as (
    select
        signups.signup_id,
        signups.user_id,
        signups.workspace_id,
        lower(trim(signups.email)) as email,
        signups.first_name,
        coalesce(signups.last_name, {{ dbt.split_part('signups.email', "'@'", 1) }}, 'Unknown') as last_name,
        coalesce(scores.company, {{ dbt.split_part('signups.email', "'@'", 2) }}, 'Unknown') as company,
        signups.title,
        scores.product_usage_score,
        scores.active_users,
        scores.last_active_at,
        signups.signed_up_at
    from {{ ref('stg_landing__signups') }} as signups
    inner join {{ ref('sales_lead_scores') }} as scores on scores.signup_id = signups.signup_id
),

leads as (
    select * from {{ ref('stg_salesforce__leads') }}
),

new_leads as (
    select
        signups.signup_id,
        signups.user_id,
        signups.workspace_id,
        signups.email,
        signups.first_name,
        signups.last_name,
        signups.company,
        signups.title,
        signups.product_usage_score,
        signups.active_users,
        signups.last_active_at,
        true as is_new_lead
    from signups
    where not exists (
            select 1 from leads
            where leads.signup_id = signups.signup_id or lower(trim(leads.email)) = signups.email
        )
        and not exists (
            select 1 from {{ ref('stg_salesforce__contacts') }} as contacts
            where contacts.user_id = signups.user_id or lower(trim(contacts.email)) = signups.email
        )
        and not exists (
            select 1 from {{ ref('stg_salesforce__accounts') }} as accounts
            where accounts.workspace_id = signups.workspace_id
        )
    qualify row_number() over (
        partition by coalesce(signups.email, signups.signup_id)
        order by signups.signed_up_at nulls last, signups.signup_id
    ) = 1
),

changed_leads as (
    select
        signups.signup_id,
        signups.user_id,
        signups.workspace_id,
        signups.email,
        signups.first_name,
        signups.last_name,
        signups.company,
        signups.title,
        signups.product_usage_score,
        signups.active_users,
        signups.last_active_at,
        false as is_new_lead
    from signups
    inner join leads on leads.signup_id = signups.signup_id
    where not leads.is_converted
        and (
            leads.product_usage_score is distinct from signups.product_usage_score
            or leads.active_users is distinct from signups.active_users
            or {{ dbt.date_trunc('second', 'leads.last_active_at') }}
                is distinct from {{ dbt.date_trunc('second', 'signups.last_active_at') }}
        )
),

records as (
    select * from new_leads
    union all
    select * from changed_leads
)

select
    signup_id,
    is_new_lead,
    signup_id as Signup_Id__c,
    first_name as FirstName,
    last_name as LastName,
    company as Company,
    email as Email,
    title as Title,
    'Web' as LeadSource,
    workspace_id as Workspace_Id__c,
    product_usage_score as Product_Usage_Score__c,
    active_users as Active_Users__c,
    last_active_at as Last_Active_At__c
from records
