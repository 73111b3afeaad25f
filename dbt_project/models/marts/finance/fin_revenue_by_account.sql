{#- Invoicing, collections and recurring revenue per workspace, with its Salesforce Account where one
    exists. Overdue = open invoices past their due date at the billing data's clock. -#}
with invoices as (
    select * from {{ ref('stg_landing__invoices') }}
),

payments as (
    select invoice_id, sum(amount) as paid_amount, max(paid_at) as last_paid_at
    from {{ ref('stg_landing__payments') }}
    group by invoice_id
),

billing as (
    select * from {{ ref('int_workspace_billing') }}
),

clock as (
    select max(as_of) as as_of from billing
),

by_workspace as (
    select
        invoices.workspace_id,
        count(*) as invoice_count,
        sum(case when invoices.status <> 'void' then invoices.amount else 0 end) as invoiced_amount,
        sum(coalesce(payments.paid_amount, 0)) as paid_amount,
        sum(case when invoices.status = 'open' then invoices.amount - coalesce(payments.paid_amount, 0)
            else 0 end) as outstanding_amount,
        sum(case when invoices.status = 'open' and invoices.due_at < clock.as_of
            then invoices.amount - coalesce(payments.paid_amount, 0) else 0 end) as overdue_amount,
        min(invoices.issued_at) as first_invoiced_at,
        max(payments.last_paid_at) as last_paid_at
    from invoices
    left join payments on payments.invoice_id = invoices.invoice_id
    cross join clock
    group by invoices.workspace_id
)

select
    workspaces.workspace_id,
    workspaces.workspace_name,
    accounts.account_id as salesforce_account_id,
    coalesce(by_workspace.invoice_count, 0) as invoice_count,
    coalesce(by_workspace.invoiced_amount, 0) as invoiced_amount,
    coalesce(by_workspace.paid_amount, 0) as paid_amount,
    coalesce(by_workspace.outstanding_amount, 0) as outstanding_amount,
    coalesce(by_workspace.overdue_amount, 0) as overdue_amount,
    coalesce(billing.mrr, 0) as current_mrr,
    coalesce(billing.arr, 0) as current_arr,
    by_workspace.first_invoiced_at,
    by_workspace.last_paid_at
from {{ ref('stg_landing__workspaces') }} as workspaces
left join by_workspace on by_workspace.workspace_id = workspaces.workspace_id
left join billing on billing.workspace_id = workspaces.workspace_id
left join {{ ref('stg_salesforce__accounts') }} as accounts on accounts.workspace_id = workspaces.workspace_id
