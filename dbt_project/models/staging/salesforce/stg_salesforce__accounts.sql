with typed as (
    select
        {{ to_str('Id') }} as id,
        {{ to_str('Name') }} as account_name,
        {{ to_str('Website') }} as website,
        {{ to_str('Industry') }} as industry,
        {{ to_num('NumberOfEmployees', 'integer') }} as number_of_employees,
        {{ to_str('BillingCountry') }} as billing_country,
        {{ to_str('OwnerId') }} as owner_id,
        {{ to_str('Workspace_Id__c') }} as workspace_id,
        {{ to_num('ARR__c', 'decimal(18, 4)') }} as arr,
        {{ to_str('Plan__c') }} as plan,
        {{ to_ts('CreatedDate') }} as created_at,
        {{ to_ts('LastModifiedDate') }} as last_modified_at,
        {{ to_ts('SystemModstamp') }} as system_modstamp,
        {{ to_bool('IsDeleted') }} as is_deleted
    from {{ source('raw_salesforce', 'account') }}
),

latest as (
    select * from typed
    {{ latest_salesforce_row() }}
)

select id as account_id, * exclude (id, is_deleted)
from latest
where not is_deleted
