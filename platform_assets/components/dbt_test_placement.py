"""Which domain's step runs each dbt test: exactly one, after every resource the test reads exists.

A domain's step runs `dbt build --select tag:<domain>`. dbt's default (eager) indirect selection adds every
test with *any* parent in the selection, so a relationships test on finance's model that reads a sales
model would also run in the sales step, before finance's model exists (and twice per build). Cautious
selection would instead drop it from both. The platform keeps eager selection and excludes, per step, the
tests placed in another domain:

- a test attached to a resource (generic tests; a singular test with one parent or dagster-dbt's
  `meta.dagster.ref`) runs with that resource's domain, as its Dagster asset check; the check's other
  parents are dependencies of the check, so Dagster runs the step after the domains that build them;
- any other singular test runs in the one domain downstream of all the domains it reads.
A test that cannot be placed so (it would need a domain to run before one of its own upstream domains)
fails load naming its file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from platform_assets.dbt_manifest import PREPARE_COMMAND, DbtManifestError, dagster_meta


def tag_domains(manifest: Mapping[str, Any], domain_names: Iterable[str]) -> dict[str, str]:
    """unique_id -> domain for every node carrying exactly one domain tag (ephemeral models included:
    `tag:<domain>` selects them, so eager selection reaches tests through them too)."""
    names = set(domain_names)
    by_node = {}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] == "test":
            continue
        tagged = names.intersection(node.get("tags", ()))
        if len(tagged) == 1:
            by_node[unique_id] = next(iter(tagged))
    return by_node


def upstream_domains(manifest: Mapping[str, Any], domain_of: Mapping[str, str]) -> dict[str, set[str]]:
    """domain -> every domain it reads from, transitively."""
    direct: dict[str, set[str]] = {domain: set() for domain in set(domain_of.values())}
    for unique_id, domain in domain_of.items():
        for parent in manifest["parent_map"].get(unique_id, ()):
            if domain_of.get(parent, domain) != domain:
                direct[domain].add(domain_of[parent])
    closed: dict[str, set[str]] = {}
    for domain in direct:
        seen, pending = set(), list(direct[domain])
        while pending:
            upstream = pending.pop()
            if upstream not in seen:
                seen.add(upstream)
                pending.extend(direct.get(upstream, ()))
        closed[domain] = seen
    return closed


def attached_resource(manifest: Mapping[str, Any], test: Mapping[str, Any]) -> str | None:
    """The resource a test checks, as dagster-dbt decides it (get_asset_check_key_for_test)."""
    parents = test["depends_on"]["nodes"]
    attached = parents[0] if len(parents) == 1 else test.get("attached_node")
    ref = dagster_meta(test).get("ref")
    if ref:
        wanted = (ref["name"], ref.get("package") or manifest["metadata"]["project_name"], ref.get("version"))
        attached = next(
            (
                unique_id
                for unique_id, node in manifest["nodes"].items()
                if (node["name"], node["package_name"], node.get("version")) == wanted
            ),
            None,
        )
    return attached


def place_tests(manifest: Mapping[str, Any], domain_of: Mapping[str, str]) -> dict[str, str]:
    """test unique_id -> the domain whose step runs it; tests of no domain (source tests) are left out."""
    upstream = upstream_domains(manifest, domain_of)
    placed, problems = {}, []
    for unique_id, test in manifest["nodes"].items():
        if test["resource_type"] != "test":
            continue
        reads = {domain_of[p] for p in test["depends_on"]["nodes"] if p in domain_of}
        attached = attached_resource(manifest, test)
        if attached in domain_of:
            home = domain_of[attached]
            later = sorted(d for d in reads if home in upstream.get(d, ()))
            if later:
                problems.append(
                    f"  {test['original_file_path']}: test {test['name']} checks a {home} resource but reads "
                    f"{', '.join(later)}, which is built after {home}: attach it to the {later[0]} resource"
                )
                continue
            placed[unique_id] = home
            continue
        homes = [d for d in reads if reads - {d} <= upstream.get(d, set())]
        if len(homes) == 1:
            placed[unique_id] = homes[0]
        elif reads:
            problems.append(
                f"  {test['original_file_path']}: test {test['name']} reads domains "
                f"{', '.join(sorted(reads))}, none downstream of the others: name the resource it checks "
                "with `config: {meta: {dagster: {ref: {name: <model>}}}}`"
            )
    if problems:
        raise DbtManifestError(
            "Each dbt test runs in one domain's step, after everything it reads is built; these cannot:\n"
            + "\n".join(problems)
            + f"\nthen run `{PREPARE_COMMAND}`."
        )
    return placed


def foreign_tests(
    manifest: Mapping[str, Any], domain: str, domain_of: Mapping[str, str], placed: Mapping[str, str]
) -> list[str]:
    """dbt selectors of the tests eager selection of `tag:<domain>` adds that belong to another step."""
    return sorted(
        "fqn:" + ".".join(manifest["nodes"][unique_id]["fqn"])
        for unique_id, home in placed.items()
        if home != domain
        and any(
            domain_of.get(parent) == domain for parent in manifest["nodes"][unique_id]["depends_on"]["nodes"]
        )
    )


def cross_domain_reads(
    manifest: Mapping[str, Any], domain_of: Mapping[str, str], placed: Mapping[str, str]
) -> dict[str, set[str]]:
    """resource -> what its tests read in other domains. These become the resource's Dagster deps: a
    check's own deps do not order the steps (dagster-dbt's checks are outputs of the domain's op), and the
    step must run after the domains that build what its tests read."""
    reads: dict[str, set[str]] = {}
    for unique_id, home in placed.items():
        test = manifest["nodes"][unique_id]
        attached = attached_resource(manifest, test)
        if attached not in domain_of:
            continue
        other = {p for p in test["depends_on"]["nodes"] if domain_of.get(p, home) != home}
        if other:
            reads.setdefault(attached, set()).update(other)
    return reads
