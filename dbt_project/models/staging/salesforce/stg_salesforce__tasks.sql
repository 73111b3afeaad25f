with typed as (
    select
        {{ to_str('Id') }} as id,
        {{ to_str('Subject') }} as subject,
        {{ to_str('WhatId') }} as what_id,
        {{ to_str('WhoId') }} as who_id,
        {{ to_str('OwnerId') }} as owner_id,
        {{ to_date('ActivityDate') }} as activity_date,
        {{ to_str('Status') }} as status,
        {{ to_str('Priority') }} as priority,
        {{ to_str('Description') }} as description,
        {{ to_str('Platform_Key__c') }} as platform_key,
        {{ to_ts('CreatedDate') }} as created_at,
        {{ to_ts('LastModifiedDate') }} as last_modified_at,
        {{ to_ts('SystemModstamp') }} as system_modstamp,
        {{ to_bool('IsDeleted') }} as is_deleted
    from {{ source('raw_salesforce', 'task') }}
),

latest as (
    select * from typed
    {{ latest_salesforce_row() }}
)

select id as task_id, * exclude (id, is_deleted)
from latest
where not is_deleted
