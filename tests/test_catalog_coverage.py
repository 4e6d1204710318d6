"""Every seed checklist item is covered by a check, an attestation or the sign-off form, section by section."""

from __future__ import annotations

import pytest

from golive.flows.catalog import ATTESTATION, SIGN_OFF, all_checks, coverage, seed_items
from golive.flows.policies import SIGNOFF_SEED

SECTIONS = sorted({i["ref"].split(".", 1)[0] for i in seed_items()}, key=int)


def test_the_seed_has_ten_sections_and_112_items():
    assert SECTIONS == [str(n) for n in range(1, 11)] and len(seed_items()) == 112


@pytest.mark.parametrize("section", SECTIONS)
def test_every_seed_item_of_the_section_is_mapped(section):
    cov = coverage()
    unmapped = [ref for ref, by in cov.items() if ref.split(".", 1)[0] == section and not by]
    assert not unmapped, f"section {section}: unmapped seed items {unmapped}"


def test_every_mapping_names_something_that_exists():
    from golive.flows.approval import signoff_form
    from golive.flows.attestations import ATTESTATIONS

    checks = set(all_checks())
    attestations = {f"{a.id} ({a.role})" for a in ATTESTATIONS}
    for ref, by in coverage().items():
        for item in by:
            if item.startswith(ATTESTATION):
                assert item.removeprefix(ATTESTATION) in attestations, (ref, item)
            elif item.startswith(SIGN_OFF):
                continue
            else:
                assert item in checks, (ref, item)
    fields = signoff_form().model_fields
    for ref, field in SIGNOFF_SEED.items():
        assert field.split(" ", 1)[0] in fields, (ref, field)
