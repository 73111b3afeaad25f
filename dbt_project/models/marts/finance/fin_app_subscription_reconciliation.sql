{{ config(tags=['app_db']) }}
{#- Subscriptions as the application sees them against the billing exports: every subscription appears
    once, with where it is missing or how the two disagree. Needs the app database (tag app_db). -#}
with app as (
    select * from {{ ref('stg_app_db__subscriptions') }}
),

billing as (
    select * from {{ ref('stg_landing__subscriptions') }}
)

select
    coalesce(app.subscription_id, billing.subscription_id) as subscription_id,
    coalesce(app.workspace_id, billing.workspace_id) as workspace_id,
    app.status as app_status,
    billing.status as billing_status,
    app.monthly_amount as app_monthly_amount,
    billing.monthly_amount as billing_monthly_amount,
    app.seats as app_seats,
    billing.seats as billing_seats,
    case
        when billing.subscription_id is null then 'missing_in_billing'
        when app.subscription_id is null then 'missing_in_app'
        when app.status is distinct from billing.status
            or app.monthly_amount is distinct from billing.monthly_amount
            or app.seats is distinct from billing.seats then 'mismatch'
        else 'matched'
    end as reconciliation_status
from app
full outer join billing on billing.subscription_id = app.subscription_id
