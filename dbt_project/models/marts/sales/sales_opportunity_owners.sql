{{ config(materialized='incremental', incremental_strategy='append') }}
{#- The account manager of each renewal Opportunity the platform creates: round-robin among the account
    managers of the account's territory, in the order the workspaces first paid. Append-only: a
    workspace once assigned keeps its manager on every later run; the next one goes to the next manager
    of its territory, and a manager who joins the territory joins the rotation at its end. -#}
{{ round_robin_assign(
    items=ref('int_renewal_candidates'),
    item_key='workspace_id',
    pool=ref('sales_account_managers'),
    pool_key='salesforce_user_id',
    partition_by='territory',
    order_by='first_paid_at, workspace_id',
    pool_order_by='created_at, salesforce_user_id',
) }}
