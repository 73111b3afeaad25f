"""The starting state of the company's Salesforce org, as a JSON-able `{sObject: [records]}` document.

`generate_salesforce_org(scale, seed)` returns the objects in dependency order:
`User`, `Account`, `Lead`, `Contact`, `Opportunity` (no `Task`: the platform creates those).

Reference convention (for the sandbox that loads this document):
- Records carry no `Id`, `CreatedDate`, `LastModifiedDate`, `SystemModstamp` or `IsDeleted`: the sandbox
  assigns them when it inserts the records.
- A reference field holds the referenced record's external id instead of an Id, and the sandbox resolves
  it on insert:
    * `OwnerId` (Account, Lead, Contact, Opportunity) holds the owning **User's `Username`**.
    * `AccountId` (Contact, Opportunity) holds the Account's **`Workspace_Id__c`**.
  Every referenced record appears earlier in the document (Users before Accounts before Contacts and
  Opportunities), so inserting object by object, in order, resolves every reference.
- Field names are the API names of the org's schema (see the team contract); values are JSON types:
  strings, numbers, booleans; `CloseDate` is `YYYY-MM-DD`, `Last_Active_At__c` is ISO-8601 UTC.

What is in it (all derived from the same workspaces as the landing files and the app database):
- User: the account managers (`am01@sample-company.example`, …), active, in the `Department` "Account
  Management", each covering a `Territory__c` (AMER, EMEA, APAC in turn).
- Account: about 60% of paying workspaces (subscription active or past_due), with `Workspace_Id__c`,
  `ARR__c` (monthly amount x 12) and `Plan__c`; owners assigned round-robin.
- Contact: each Account's workspace owner, with `User_Id__c`.
- Opportunity: about half the Accounts (renewal or expansion), `Workspace_Id__c` = the Account's.
- Lead: about a third of the trialing workspaces' owners (as sales already knew them), with
  `Signup_Id__c` = null (they came from a form, not the platform) and `Workspace_Id__c`.
"""

from __future__ import annotations

import math
import random
from typing import Any

from local_stack.sample_company.model import DAY, END_EPOCH, FIRST_NAMES, LAST_NAMES, date_of, iter_cores

STAGES = ("Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted")
# The account managers' team (User.Department) and territories (User.Territory__c), in turn; the dbt seed
# sales_territories maps each account country to one of these.
ACCOUNT_MANAGEMENT = "Account Management"
TERRITORIES = ("AMER", "EMEA", "APAC")


def account_manager_count(scale: float) -> int:
    return max(3, round(6 * math.sqrt(scale)))


def _users(scale: float, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:salesforce:users")
    users = []
    for number in range(1, account_manager_count(scale) + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        users.append(
            {
                "Username": f"am{number:02d}@sample-company.example",
                "FirstName": first,
                "LastName": last,
                "Email": f"{first.lower()}.{last.lower()}@sample-company.example",
                "Title": "Account Manager",
                "IsActive": True,
                "Department": ACCOUNT_MANAGEMENT,
                "Territory__c": TERRITORIES[(number - 1) % len(TERRITORIES)],
            }
        )
    return users


def generate_salesforce_org(scale: float = 1.0, seed: int = 42) -> dict[str, list[dict[str, Any]]]:
    """The org's starting records, `{sObject: [records]}`; see the module docstring for references."""
    users = _users(scale, seed)
    usernames = [user["Username"] for user in users]
    rng = random.Random(f"{seed}:salesforce")
    accounts: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    opportunities: list[dict[str, Any]] = []
    leads: list[dict[str, Any]] = []
    for core in iter_cores(scale, seed):
        owner = core.users[0]
        sub = core.subscription
        if core.is_paying and rng.random() < 0.6:
            manager = usernames[len(accounts) % len(usernames)]
            arr = round(float(sub.monthly_amount) * 12, 2)
            accounts.append(
                {
                    "Name": core.name,
                    "Website": core.domain,
                    "Industry": core.industry,
                    "NumberOfEmployees": core.employee_count,
                    "BillingCountry": core.country,
                    "OwnerId": manager,
                    "Workspace_Id__c": core.workspace_id,
                    "ARR__c": arr,
                    "Plan__c": core.plan,
                }
            )
            contacts.append(
                {
                    "AccountId": core.workspace_id,
                    "FirstName": owner.first_name,
                    "LastName": owner.last_name,
                    "Email": owner.email,
                    "Title": owner.title,
                    "OwnerId": manager,
                    "User_Id__c": owner.user_id,
                }
            )
            if rng.random() < 0.5:
                kind = rng.choice(("Renewal", "Existing Business"))
                opportunities.append(
                    {
                        "Name": f"{core.name} - {kind}",
                        "AccountId": core.workspace_id,
                        "StageName": rng.choice(STAGES),
                        "CloseDate": date_of(END_EPOCH + rng.randint(7, 120) * DAY),
                        "Amount": round(arr * rng.uniform(1.0, 1.5), 2),
                        "Type": kind,
                        "OwnerId": manager,
                        "Workspace_Id__c": core.workspace_id,
                    }
                )
        elif sub.status == "trialing" and rng.random() < 0.33:
            leads.append(
                {
                    "FirstName": owner.first_name,
                    "LastName": owner.last_name,
                    "Company": core.name,
                    "Email": owner.email,
                    "Title": owner.title,
                    "Status": rng.choice(LEAD_STATUSES),
                    "LeadSource": "Web",
                    "OwnerId": rng.choice(usernames),
                    "Signup_Id__c": None,
                    "Workspace_Id__c": core.workspace_id,
                    "IsConverted": False,
                }
            )
    return {
        "User": users,
        "Account": accounts,
        "Lead": leads,
        "Contact": contacts,
        "Opportunity": opportunities,
    }
