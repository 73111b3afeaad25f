{{ config(materialized='incremental', incremental_strategy='append') }}
-- CTEs around the call: the macro's own query goes in a subquery.
with open_tickets as (
    select * from {{ source('helpdesk', 'tickets') }} where status = 'open'
),

active_agents as (
    select * from {{ source('helpdesk', 'agents') }} where active
)

select * from (
    {{ round_robin_assign(
        items='open_tickets',
        item_key='ticket_id',
        pool='active_agents',
        pool_key='agent_id',
        partition_by='queue_id',
        order_by='opened_at, ticket_id',
        pool_order_by='joined_at, agent_id',
    ) }}
) as assignments
