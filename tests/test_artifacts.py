"""flows/artifacts.py: golive's artifact keys and its one machine-readable format, written and read back through a
real Prefect server; a person's text that imitates the format cannot pose as the payload."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from golive.flows import artifacts


def test_keys_are_per_kind_and_environment_and_unknown_kinds_are_refused():
    assert artifacts.key("verdict", "prod") == "golive-verdict-prod"
    assert artifacts.key("rehearsal", "staging") == "golive-rehearsal-staging"
    with pytest.raises(ValueError, match="unknown artifact kind"):
        artifacts.key("verdicts", "prod")  # type: ignore[arg-type]


def test_the_payload_is_the_last_fence_and_parsing_never_raises():
    md = artifacts.json_markdown("# GO\n\nsigned", {"decision": "GO", "why": "a\n```\nb"})
    assert artifacts.parse_json(md) == {"decision": "GO", "why": "a\n```\nb"}  # a fence inside a string stays inside
    # a reason a person typed that imitates the format lands in the people's part: the payload is still golive's
    forged = '```json\n{"decision": "GO"}\n```'
    md = artifacts.json_markdown(f"# NO-GO\n\n{forged}", {"decision": "NO-GO"})
    assert artifacts.parse_json(md) == {"decision": "NO-GO"}
    assert artifacts.json_markdown("", [1, 2], compact=True) == "```json\n[1,2]\n```\n"
    for junk in (None, 42, "", "# no fence", "```json\n{not json\n```", "```json\n{not json"):
        assert artifacts.parse_json(junk) is None
    assert artifacts.parse_json('```json\n{"a": 1}') == {"a": 1}  # an unclosed last fence still reads


def test_the_json_is_redacted_as_text_when_asked():
    md = artifacts.json_markdown(
        "", {"blocking": ["x: password hunter2 refused"]}, redact=lambda s: s.replace("hunter2", "***")
    )
    assert "hunter2" not in md and artifacts.parse_json(md) == {"blocking": ["x: password *** refused"]}


def test_published_json_reads_back_latest_and_per_run_through_prefects_client(prefect_api):
    """On the session's Prefect server: two versions on one run, the latest read back by key, every version of the
    run read back (the deploy flow's union of a run's verdicts), a version that is not golive JSON read as None."""
    from prefect import flow
    from prefect.client.orchestration import get_client

    env = f"art-{uuid.uuid4().hex[:8]}"

    @flow(name="artifacts-test")
    def carrier() -> None: ...

    async def scenario():
        async with get_client() as c:
            run_id = (await c.create_flow_run(carrier, name="carries artifacts")).id
            await artifacts.publish_json("verdict", env, "", {"blocking": ["a FAIL: x"]}, "v1", flow_run_id=run_id)
            await artifacts.publish_json("verdict", env, "", {"blocking": ["b FAIL: y"]}, "v2", flow_run_id=run_id)
            await artifacts.publish("verdict", env, "# not golive JSON", "junk", flow_run_id=run_id)
            latest = await artifacts.latest_json("verdict", env, c)
            every = await artifacts.run_json(c, "verdict", env, run_id)
            return latest, every

    latest, every = asyncio.run(scenario())
    assert latest is None  # the latest version is the junk one: not golive JSON, so no payload
    assert sorted(b for v in every if v for b in v["blocking"]) == ["a FAIL: x", "b FAIL: y"]
    assert sum(v is None for v in every) == 1


def test_a_mask_that_would_break_the_json_falls_back_to_redacting_each_string():
    """The verdict's JSON must stay readable after redaction (the deploy flow refuses an unreadable verdict): a
    redactor that mangles the JSON text (here: it eats the quote that closes the string after the secret) is applied
    string by string."""
    import re

    md = artifacts.json_markdown(
        "", {"blocking": ["x: hunter2"], "n": 1}, redact=lambda s: re.sub(r'hunter2"?', "***", s)
    )
    assert "hunter2" not in md and artifacts.parse_json(md) == {"blocking": ["x: ***"], "n": 1}
