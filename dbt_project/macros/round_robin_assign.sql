{#- Round-robin assignment, stable across runs: each item (an opportunity, a ticket …) goes to the next
    member of its partition's pool (a team, a territory, a queue …), and an item once assigned keeps its
    member forever. Use it in an incremental model with incremental_strategy='append': on each run it
    returns only the items not assigned yet, so stored assignments are never rewritten.

    Arguments (relations, or names of CTEs defined around the call):
    - items, item_key: what to assign and its unique key column.
    - pool, pool_key: who to assign to and the member's key column (e.g. a User Id).
    - partition_by: the column both items and pool carry (team, territory, queue); none = one pool.
    - order_by: the order new items are dealt in (unqualified columns of items), ending with the key.
    - pool_order_by: the rotation order of the pool; ordering by when a member joined (then the key) puts
      a newcomer at the end of the rotation, so nobody's turn moves.
    - assigned: the assignments made so far (columns item_key, partition_by, assigned_to, assignment_seq);
      defaults to the model itself ({{ this }}) on incremental runs, to none on the first or a full refresh.

    Returns item_key, partition_by, assigned_to (the member's key) and assignment_seq (1, 2, … per
    partition). The first new item of a partition goes to the member after the last one assigned in the
    current pool order; if that member has left the pool, the rotation goes on at position
    (assignments so far mod pool size). Items whose partition has no member yet are not returned: they
    are assigned on a later run, once the pool has someone. Plain SQL over window functions: runs on DuckDB
    and Snowflake alike. Wrap the call in a subquery to combine it with CTEs:
    `select * from ({{ round_robin_assign(...) }}) as assignments`. -#}
{% macro round_robin_assign(
    items, item_key, pool, pool_key, order_by, pool_order_by, partition_by=none, assigned=none
) -%}
{%- if assigned is none and is_incremental() -%}
    {%- set assigned = this -%}
{%- endif -%}
{%- set item_partition = partition_by if partition_by is not none else "cast('all' as varchar)" -%}
with _rr_pool as (
    select
        {{ pool_key }} as _rr_member,
        {{ item_partition }} as _rr_partition,
        row_number() over (partition by {{ item_partition }} order by {{ pool_order_by }}) - 1 as _rr_rank,
        count(*) over (partition by {{ item_partition }}) as _rr_size
    from {{ pool }}
    where {{ item_partition }} is not null
),

_rr_done as (
    {%- if assigned is not none %}
    select
        {{ item_key }} as _rr_item,
        {{ item_partition }} as _rr_partition,
        assigned_to as _rr_member,
        assignment_seq as _rr_seq
    from {{ assigned }}
    {%- else %}
    select
        items.{{ item_key }} as _rr_item,
        {{ "items." ~ partition_by if partition_by is not none else item_partition }} as _rr_partition,
        pool.{{ pool_key }} as _rr_member,
        cast(0 as bigint) as _rr_seq
    from {{ items }} as items
    cross join {{ pool }} as pool
    where 1 = 0
    {%- endif %}
),

_rr_last as (
    select _rr_partition, _rr_member, _rr_seq
    from _rr_done
    qualify row_number() over (partition by _rr_partition order by _rr_seq desc) = 1
),

_rr_start as (
    select
        sizes._rr_partition,
        sizes._rr_size,
        coalesce(last_assigned._rr_seq, 0) as _rr_seq,
        case
            when last_assigned._rr_partition is null then 0
            when still_there._rr_member is not null then still_there._rr_rank + 1
            else last_assigned._rr_seq
        end as _rr_first_position
    from (select distinct _rr_partition, _rr_size from _rr_pool) as sizes
    left join _rr_last as last_assigned on last_assigned._rr_partition = sizes._rr_partition
    left join _rr_pool as still_there
        on still_there._rr_partition = last_assigned._rr_partition
        and still_there._rr_member = last_assigned._rr_member
),

_rr_new as (
    select
        {{ item_key }} as _rr_item,
        {{ item_partition }} as _rr_partition,
        row_number() over (partition by {{ item_partition }} order by {{ order_by }}) as _rr_n
    from {{ items }}
    where {{ item_key }} not in (select _rr_item from _rr_done where _rr_item is not null)
)

select
    new_items._rr_item as {{ item_key }},
    {%- if partition_by is not none %}
    new_items._rr_partition as {{ partition_by }},
    {%- endif %}
    pool._rr_member as assigned_to,
    start._rr_seq + new_items._rr_n as assignment_seq
from _rr_new as new_items
inner join _rr_start as start on start._rr_partition = new_items._rr_partition
inner join _rr_pool as pool
    on pool._rr_partition = new_items._rr_partition
    and pool._rr_rank = (start._rr_first_position + new_items._rr_n - 1) % start._rr_size
{%- endmacro %}
