with typed as (
    select
        {{ to_str('Id') }} as id,
        {{ to_str('Name') }} as opportunity_name,
        {{ to_str('AccountId') }} as account_id,
        {{ to_str('StageName') }} as stage_name,
        {{ to_date('CloseDate') }} as close_date,
        {{ to_num('Amount', 'decimal(18, 4)') }} as amount,
        {{ to_str('Type') }} as opportunity_type,
        {{ to_str('OwnerId') }} as owner_id,
        {{ to_str('Workspace_Id__c') }} as workspace_id,
        {{ to_ts('CreatedDate') }} as created_at,
        {{ to_ts('LastModifiedDate') }} as last_modified_at,
        {{ to_ts('SystemModstamp') }} as system_modstamp,
        {{ to_bool('IsDeleted') }} as is_deleted
    from {{ source('raw_salesforce', 'opportunity') }}
),

latest as (
    select * from typed
    {{ latest_salesforce_row() }}
)

select id as opportunity_id, * exclude (id, is_deleted)
from latest
where not is_deleted
