with typed as (
    select
        {{ to_str('Id') }} as id,
        {{ to_str('Username') }} as username,
        {{ to_str('FirstName') }} as first_name,
        {{ to_str('LastName') }} as last_name,
        lower({{ to_str('Email') }}) as email,
        {{ to_str('Title') }} as title,
        {{ to_bool('IsActive') }} as is_active,
        {{ to_str('Department') }} as department,
        {{ to_str('Territory__c') }} as territory,
        {{ to_ts('CreatedDate') }} as created_at,
        {{ to_ts('LastModifiedDate') }} as last_modified_at,
        {{ to_ts('SystemModstamp') }} as system_modstamp,
        {{ to_bool('IsDeleted') }} as is_deleted
    from {{ source('raw_salesforce', 'user') }}
),

latest as (
    select * from typed
    {{ latest_salesforce_row() }}
)

select id as salesforce_user_id, * exclude (id, is_deleted)
from latest
where not is_deleted
