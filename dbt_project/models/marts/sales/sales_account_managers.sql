{#- The pool new renewal Opportunities are dealt to: active Salesforce Users of the account-management
    team (User.Department = var account_manager_team) with a territory, in the order they joined. -#}
select
    salesforce_user_id,
    {{ dbt.concat(["coalesce(first_name, '')", "' '", "last_name"]) }} as manager_name,
    email,
    department as team,
    territory,
    created_at
from {{ ref('stg_salesforce__users') }}
where is_active
    and department = '{{ var("account_manager_team", "Account Management") }}'
    and territory is not null
