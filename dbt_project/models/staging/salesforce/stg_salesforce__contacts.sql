with typed as (
    select
        {{ to_str('Id') }} as id,
        {{ to_str('AccountId') }} as account_id,
        {{ to_str('FirstName') }} as first_name,
        {{ to_str('LastName') }} as last_name,
        lower({{ to_str('Email') }}) as email,
        {{ to_str('Title') }} as title,
        {{ to_str('OwnerId') }} as owner_id,
        {{ to_str('User_Id__c') }} as user_id,
        {{ to_ts('CreatedDate') }} as created_at,
        {{ to_ts('LastModifiedDate') }} as last_modified_at,
        {{ to_ts('SystemModstamp') }} as system_modstamp,
        {{ to_bool('IsDeleted') }} as is_deleted
    from {{ source('raw_salesforce', 'contact') }}
),

latest as (
    select * from typed
    {{ latest_salesforce_row() }}
)

select id as contact_id, * exclude (id, is_deleted)
from latest
where not is_deleted
