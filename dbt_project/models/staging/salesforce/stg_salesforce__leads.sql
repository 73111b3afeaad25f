with typed as (
    select
        {{ to_str('Id') }} as id,
        {{ to_str('FirstName') }} as first_name,
        {{ to_str('LastName') }} as last_name,
        {{ to_str('Company') }} as company,
        lower({{ to_str('Email') }}) as email,
        {{ to_str('Title') }} as title,
        {{ to_str('Status') }} as status,
        {{ to_str('LeadSource') }} as lead_source,
        {{ to_str('OwnerId') }} as owner_id,
        {{ to_str('Signup_Id__c') }} as signup_id,
        {{ to_str('Workspace_Id__c') }} as workspace_id,
        {{ to_num('Product_Usage_Score__c', 'decimal(18, 4)') }} as product_usage_score,
        {{ to_num('Active_Users__c', 'decimal(18, 4)') }} as active_users,
        {{ to_ts('Last_Active_At__c') }} as last_active_at,
        {{ to_bool('IsConverted') }} as is_converted,
        {{ to_ts('CreatedDate') }} as created_at,
        {{ to_ts('LastModifiedDate') }} as last_modified_at,
        {{ to_ts('SystemModstamp') }} as system_modstamp,
        {{ to_bool('IsDeleted') }} as is_deleted
    from {{ source('raw_salesforce', 'lead') }}
),

latest as (
    select * from typed
    {{ latest_salesforce_row() }}
)

select id as lead_id, * exclude (id, is_deleted)
from latest
where not is_deleted
