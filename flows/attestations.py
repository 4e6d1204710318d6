"""Attestations: the checklist items only people can know (a briefing was held, the CEO was told, I will be around).

They are not fake checks: each is a statement a signer attests on the sign-off form, with the role that answers for
it and the seed items it covers. Where a machine can know part of an item, that part is a check (the contact list is
complete, the release notes answer 200, someone is on call) and the attestation covers only the rest.

`id` is a snake_case identifier (the sign-off form's field is `attest_<id>`); `role` is the owning role's name
(`flows.policies.Role`) or `every signer` for what each signer acknowledges personally (seed 10.3).
Kept free of Prefect imports.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .policies import Role

EVERY_SIGNER = "every signer"
ROLE_NAMES = frozenset(r.value for r in Role) | {EVERY_SIGNER}


class Attestation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{2,60}$")
    statement: str = Field(min_length=10, description="what the signer attests, as they would say it")
    role: str = Field(description="the owning role (a flows.policies.Role value) or 'every signer'")
    seed: tuple[str, ...] = Field(default=(), description="seed items (flows/seed_items.json refs) it covers")
    source: str = Field(description="where the wording comes from in the seed checklist")

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in ROLE_NAMES:
            raise ValueError(f"unknown role {v!r}; one of {sorted(ROLE_NAMES)}")
        return v


def _a(id: str, statement: str, role: Role | str, seed: tuple[str, ...], source: str) -> Attestation:
    return Attestation(id=id, statement=statement, role=role.value if isinstance(role, Role) else role, seed=seed,
                       source=source)


ATTESTATIONS: tuple[Attestation, ...] = (
    _a("team_briefed", "Every team member (DevOps, Backend, Frontend, QA, PM) was briefed on the timeline, the "
       "procedures and the escalation path", Role.DEPLOYMENT_COORDINATOR, ("9.1 Team Briefing",),
       "9.1 Team Briefing: attendees, topics"),
    _a("briefing_questions_answered", "All questions raised in the team briefing were answered",
       Role.DEPLOYMENT_COORDINATOR, ("9.1 Team Briefing",), "9.1 Team Briefing: questions all answered"),
    _a("contact_phones_verified", "The phone numbers on the emergency contact list were verified with their owners",
       Role.DEPLOYMENT_COORDINATOR, ("9.1 Team Contact Info",),
       "9.1 Team Contact Info: phone numbers updated and verified (golive checks only that they are well-formed)"),
    _a("runbooks_printed", "The deployment runbook is printed and the emergency contacts are posted at the "
       "deployment terminal", Role.DEVOPS_LEAD, ("9.1 Runbooks Available",),
       "9.1 Runbooks Available: printed; emergency contacts posted (golive checks that the runbooks answer)"),
    _a("executives_informed", "The CEO and CFO were informed of the go-live", Role.VP_ENGINEERING,
       ("9.2 Stakeholder Notification",), "9.2 Stakeholder Notification: CEO/CFO informed"),
    _a("product_team_ready", "The product team is ready for urgent issues during and after the go-live",
       Role.PRODUCT_LEAD, ("9.2 Stakeholder Notification",), "9.2 Stakeholder Notification: product team ready"),
    _a("support_team_briefed", "The support team was briefed on the new features", Role.PRODUCT_LEAD,
       ("9.2 Stakeholder Notification",), "9.2 Stakeholder Notification: support team briefed"),
    _a("rollback_decision_known", "The team knows how to decide a rollback: the documented criteria, that the CTO "
       "makes the final call, and the steps to execute it", Role.CTO, ("8.2 Rollback Decision",),
       "8.2 Rollback Decision: criteria, owner, process"),
    _a("blog_post_drafted", "The go-live blog post draft is ready", Role.PRODUCT_LEAD,
       ("9.2 Post-Deployment Communication",),
       "9.2 Post-Deployment Communication: blog post (golive checks the release notes)"),
    _a("social_posts_queued", "The social media posts are queued", Role.PRODUCT_LEAD,
       ("9.2 Post-Deployment Communication",), "9.2 Post-Deployment Communication: social media"),
    _a("rollback_procedures_understood", "I understand the rollback procedures", EVERY_SIGNER, (),
       "10.3 Stakeholder Sign-Off: acknowledgement 3"),
    _a("available_post_deployment", "I am available for post-deployment monitoring (the first hour is critical)",
       EVERY_SIGNER, (), "10.3 Stakeholder Sign-Off: acknowledgement 4; Post-Checklist Handover: monitor"),
)


def attestation(id: str) -> Attestation:
    for a in ATTESTATIONS:
        if a.id == id:
            return a
    raise KeyError(f"unknown attestation {id!r}")


def for_role(role: Role | str) -> list[Attestation]:
    """What a signer of `role` answers for: the attestations their role owns, and those every signer makes."""
    name = role.value if isinstance(role, Role) else role
    return [a for a in ATTESTATIONS if a.role in (name, EVERY_SIGNER)]


def covering() -> dict[str, list[Attestation]]:
    """seed ref -> the attestations covering it."""
    out: dict[str, list[Attestation]] = {}
    for a in ATTESTATIONS:
        for ref in a.seed:
            out.setdefault(ref, []).append(a)
    return out
