select customer_id, first_name, last_name, country from {{ ref('stg_customers') }}
