{{ config(materialized='incremental', incremental_strategy='append') }}
{{ round_robin_assign(
    items=source('helpdesk', 'tickets'),
    item_key='ticket_id',
    pool=source('helpdesk', 'agents'),
    pool_key='agent_id',
    order_by='ticket_id',
    pool_order_by='agent_id',
) }}
