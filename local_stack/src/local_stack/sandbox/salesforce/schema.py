"""The sandbox org's schema and Salesforce-style record ids.

`OBJECTS` is the catalog: every object the sandbox serves, its key prefix, fields and their Salesforce
types, in one place (describe, SOQL, Bulk and REST all read it). Objects are listed parents first (seeding
follows this order). `add_field` adds a field at run time, as an admin does in Setup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

# Salesforce field types used here, and how SQLite stores them.
SQL_TYPES = {
    "id": "TEXT",
    "string": "TEXT",
    "email": "TEXT",
    "url": "TEXT",
    "picklist": "TEXT",
    "textarea": "TEXT",
    "phone": "TEXT",
    "multipicklist": "TEXT",
    "reference": "TEXT",
    "date": "TEXT",
    "datetime": "TEXT",
    "int": "INTEGER",
    "double": "REAL",
    "currency": "REAL",
    "percent": "REAL",
    "boolean": "INTEGER",
}
TEXT_TYPES = frozenset({"id", "string", "email", "url", "picklist", "textarea", "phone", "multipicklist"})
NUMBER_TYPES = frozenset({"double", "currency", "percent"})
SYSTEM_FIELDS = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str = "string"
    required: bool = False
    """Not nillable on create/update (Salesforce: nillable=false, createable=true, no default)."""
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    default: str | None = None
    createable: bool = True
    updateable: bool = True
    length: int = 255

    @property
    def nillable(self) -> bool:
        return not self.required and self.type != "boolean" and self.createable

    @property
    def relationship_name(self) -> str | None:
        """AccountId -> Account, Account__c -> Account__r: the name used for `Account.Workspace_Id__c`
        style lookups in Bulk CSVs."""
        if self.type != "reference":
            return None
        if self.name.endswith("__c"):
            return self.name[:-3] + "__r"
        return self.name[:-2] if self.name.endswith("Id") else None


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    by_lower: dict[str, FieldSpec] = field(init=False, repr=False, compare=False, hash=False)
    by_name: dict[str, FieldSpec] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_lower", {f.name.lower(): f for f in self.fields})
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def field(self, name: str) -> FieldSpec | None:
        return self.by_name.get(name) or self.by_lower.get(name.lower())

    @property
    def reference_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.type == "reference"]

    @property
    def required_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    @property
    def table(self) -> str:
        return f"sobject_{self.name}"

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")


def _system(*custom: FieldSpec) -> tuple[FieldSpec, ...]:
    audit = dict(createable=False, updateable=False)
    return (
        FieldSpec("Id", "id", createable=False, updateable=False, length=18),
        *custom,
        FieldSpec("CreatedDate", "datetime", **audit),
        FieldSpec("LastModifiedDate", "datetime", **audit),
        FieldSpec("SystemModstamp", "datetime", **audit),
        FieldSpec("IsDeleted", "boolean", default="false", **audit),
    )


def _owner() -> FieldSpec:
    return FieldSpec("OwnerId", "reference", reference_to=("User",), length=18)


OBJECTS: dict[str, ObjectSpec] = {
    spec.name: spec
    for spec in (
        ObjectSpec(
            "User",
            "005",
            _system(
                FieldSpec("Username", unique=True),
                FieldSpec("FirstName", length=40),
                FieldSpec("LastName", required=True, length=80),
                FieldSpec("Email", "email", required=True, length=128),
                FieldSpec("Title", length=80),
                FieldSpec("IsActive", "boolean", default="true"),
                # The sales team a User belongs to and the territory they cover (assignment models read them).
                FieldSpec("Department", length=80),
                FieldSpec("Territory__c", "picklist", length=40),
            ),
        ),
        ObjectSpec(
            "Account",
            "001",
            _system(
                FieldSpec("Name", required=True),
                FieldSpec("Website", "url"),
                FieldSpec("Industry", "picklist"),
                FieldSpec("NumberOfEmployees", "int"),
                FieldSpec("BillingCountry", length=80),
                _owner(),
                FieldSpec("Workspace_Id__c", external_id=True, unique=True, length=64),
                FieldSpec("ARR__c", "currency"),
                FieldSpec("Plan__c", "picklist"),
            ),
        ),
        ObjectSpec(
            "Lead",
            "00Q",
            _system(
                FieldSpec("FirstName", length=40),
                FieldSpec("LastName", required=True, length=80),
                FieldSpec("Company", required=True),
                FieldSpec("Email", "email", length=128),
                FieldSpec("Title", length=128),
                FieldSpec("Status", "picklist", required=True, default="Open - Not Contacted"),
                FieldSpec("LeadSource", "picklist"),
                _owner(),
                FieldSpec("Signup_Id__c", external_id=True, unique=True, length=64),
                FieldSpec("Workspace_Id__c", length=64),
                FieldSpec("Product_Usage_Score__c", "double"),
                FieldSpec("Active_Users__c", "double"),
                FieldSpec("Last_Active_At__c", "datetime"),
                FieldSpec("IsConverted", "boolean", default="false", updateable=False),
            ),
        ),
        ObjectSpec(
            "Contact",
            "003",
            _system(
                FieldSpec("AccountId", "reference", reference_to=("Account",), length=18),
                FieldSpec("FirstName", length=40),
                FieldSpec("LastName", required=True, length=80),
                FieldSpec("Email", "email", length=128),
                FieldSpec("Title", length=128),
                _owner(),
                FieldSpec("User_Id__c", external_id=True, length=64),
            ),
        ),
        ObjectSpec(
            "Opportunity",
            "006",
            _system(
                FieldSpec("Name", required=True, length=120),
                FieldSpec("AccountId", "reference", reference_to=("Account",), length=18),
                FieldSpec("StageName", "picklist", required=True),
                FieldSpec("CloseDate", "date", required=True),
                FieldSpec("Amount", "currency"),
                FieldSpec("Type", "picklist"),
                _owner(),
                FieldSpec("Workspace_Id__c", external_id=True, unique=True, length=64),
            ),
        ),
        ObjectSpec(
            "Task",
            "00T",
            _system(
                FieldSpec("Subject", required=True),
                FieldSpec("WhatId", "reference", reference_to=("Account", "Opportunity"), length=18),
                FieldSpec("WhoId", "reference", reference_to=("Lead", "Contact"), length=18),
                _owner(),
                FieldSpec("ActivityDate", "date"),
                FieldSpec("Status", "picklist", required=True),
                FieldSpec("Priority", "picklist"),
                FieldSpec("Description", "textarea", length=32000),
                FieldSpec("Platform_Key__c", external_id=True, unique=True, length=128),
            ),
        ),
        ObjectSpec(
            "Case",
            "500",
            _system(
                FieldSpec("Subject"),
                FieldSpec("AccountId", "reference", reference_to=("Account",), length=18),
                FieldSpec("ContactId", "reference", reference_to=("Contact",), length=18),
                _owner(),
                FieldSpec("Status", "picklist", required=True, default="New"),
                FieldSpec("Priority", "picklist", default="Medium"),
                FieldSpec("Origin", "picklist"),
                FieldSpec("Type", "picklist"),
                FieldSpec("Description", "textarea", length=32000),
                FieldSpec("SuppliedPhone", "phone", length=40),
                FieldSpec("IsEscalated", "boolean", default="false"),
                FieldSpec("ClosedDate", "datetime"),
                FieldSpec("Platform_Key__c", external_id=True, unique=True, length=128),
            ),
        ),
        # A custom object, as an org defines its own (API name ends in __c, key prefix a0…).
        ObjectSpec(
            "Subscription__c",
            "a01",
            _system(
                FieldSpec("Name", required=True, length=80),
                FieldSpec("Account__c", "reference", reference_to=("Account",), length=18),
                FieldSpec("Workspace_Id__c", external_id=True, unique=True, length=64),
                FieldSpec("Plan__c", "picklist"),
                FieldSpec("Seats__c", "double"),
                FieldSpec("Discount__c", "percent"),
                FieldSpec("Features__c", "multipicklist", length=4099),
                FieldSpec("Renewal_Date__c", "date"),
                FieldSpec("Auto_Renew__c", "boolean", default="false"),
            ),
        ),
        ObjectSpec(
            "Campaign",
            "701",
            _system(
                FieldSpec("Name", required=True, length=80),
                FieldSpec("Type", "picklist"),
                FieldSpec("Status", "picklist", default="Planned"),
                FieldSpec("StartDate", "date"),
                FieldSpec("EndDate", "date"),
                FieldSpec("BudgetedCost", "currency"),
                FieldSpec("IsActive", "boolean", default="false"),
                _owner(),
                FieldSpec("Campaign_Id__c", external_id=True, unique=True, length=64),
            ),
        ),
        # As in Salesforce, a member's campaign and person are set when it is created, never changed.
        ObjectSpec(
            "CampaignMember",
            "00v",
            _system(
                FieldSpec(
                    "CampaignId",
                    "reference",
                    required=True,
                    reference_to=("Campaign",),
                    updateable=False,
                    length=18,
                ),
                FieldSpec("LeadId", "reference", reference_to=("Lead",), updateable=False, length=18),
                FieldSpec("ContactId", "reference", reference_to=("Contact",), updateable=False, length=18),
                FieldSpec("Status", "picklist", default="Sent"),
                FieldSpec("Platform_Key__c", external_id=True, unique=True, length=128),
            ),
        ),
    )
}
OBJECTS_BY_LOWER = {name.lower(): spec for name, spec in OBJECTS.items()}
OBJECTS_BY_PREFIX = {spec.key_prefix: spec for spec in OBJECTS.values()}


_BUILT_IN = dict(OBJECTS)


def forget_added_fields() -> None:
    """The catalog as built in, without fields added at run time (tests that add fields call this after)."""
    from local_stack.sandbox.salesforce.change_events import event_schema  # it imports this module

    for spec in _BUILT_IN.values():
        OBJECTS[spec.name] = OBJECTS_BY_LOWER[spec.name.lower()] = OBJECTS_BY_PREFIX[spec.key_prefix] = spec
    event_schema.cache_clear()


def find_object(name: str) -> ObjectSpec | None:
    return OBJECTS_BY_LOWER.get(name.lower())


def add_field(object_name: str, new: FieldSpec) -> ObjectSpec:
    """Add a field to an object of the catalog (of every org in this process), as an admin does in Setup;
    the org's stores add the column (Org.add_field). Raises ValueError naming what is wrong."""
    spec = find_object(object_name)
    if spec is None:
        raise ValueError(f"no sObject {object_name!r} (objects: {', '.join(OBJECTS)})")
    if new.type not in SQL_TYPES:
        raise ValueError(
            f"{object_name}.{new.name}: unknown field type {new.type!r} (types: {', '.join(SQL_TYPES)})"
        )
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", new.name):
        raise ValueError(f"{object_name}.{new.name}: a field name is letters, digits and underscores")
    existing = spec.field(new.name)
    if existing is not None:
        if existing == new:
            return spec
        raise ValueError(f"{spec.name}.{new.name} exists already ({existing.type})")
    changed = replace(spec, fields=(*spec.fields, new))
    OBJECTS[spec.name] = OBJECTS_BY_LOWER[spec.name.lower()] = OBJECTS_BY_PREFIX[spec.key_prefix] = changed
    return changed


# ------------------------------------------------------------------ ids

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$")
POD = "8d"  # the two 'instance' characters after the key prefix; constant in the sandbox
ORG_ID = "00D8d0000000001EAA"
INTEGRATION_USER_ID = "0058d0000000000AAA"  # every token acts as this user


def checksum_suffix(id15: str) -> str:
    """Salesforce's case-safe suffix: one character per 5-char chunk, encoding which chars are uppercase."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits]
    return suffix


def make_id(key_prefix: str, number: int) -> str:
    digits = ""
    while number:
        number, rem = divmod(number, 62)
        digits = _BASE62[rem] + digits
    id15 = f"{key_prefix}{POD}0{digits.rjust(9, '0')}"
    return id15 + checksum_suffix(id15)


def normalize_id(value: str) -> str | None:
    """The 18-char form of a 15- or 18-char id, or None when the value is not a well-formed id."""
    if not _ID_RE.match(value):
        return None
    id15 = value[:15]
    full = id15 + checksum_suffix(id15)
    if len(value) == 18 and value[15:].upper() != full[15:]:
        return None
    return full


def object_of_id(record_id: str) -> ObjectSpec | None:
    return OBJECTS_BY_PREFIX.get(record_id[:3])
