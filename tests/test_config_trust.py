"""Every TLS target takes its own trust anchor (`ca_file`, or libpq's `sslrootcert`), validated when the config
loads: the file exists and holds a PEM certificate OpenSSL can load. One line naming the field otherwise."""

from __future__ import annotations

import pytest
import trustme

from golive.flows.config import ConfigError, parse_config

PLAIN = {"environment": "t"}
#: section -> (the section's minimal keys, the trust-anchor key's path inside it)
TARGETS = {
    "web": ({"base_url": "https://app.example", "expected_title": "X"}, ("ca_file",)),
    "smtp": ({"host": "smtp.example", "hourly_capacity": 1000}, ("ca_file",)),
    "monitoring": ({"prometheus_url": "https://prom.example"}, ("ca_file",)),
    "redis": ({"url": "rediss://cache.example:6380/0"}, ("ca_file",)),
    "pgbouncer": ({"host": "pool.example", "admin_user": "stats"}, ("sslrootcert",)),
    "loadbalancer": ({"instances": ["https://10.0.0.1"]}, ("ca_file",)),
    "postgres": ({"host": "db.example", "dbname": "app", "user": "app", "sslmode": "verify-full"}, ("sslrootcert",)),
    "restore": ({"host": "restore.example", "user": "restorer", "sslmode": "verify-full"}, ("sslrootcert",)),
    "backups": ({"bucket": "backups", "endpoint_url": "https://s3.internal.example"}, ("ca_file",)),
}


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    ca = trustme.CA()
    good = d / "private-ca.pem"
    ca.cert_pem.write_to_path(str(good))
    junk = d / "not-a-cert.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    key_only = d / "key.pem"
    ca.private_key_pem.write_to_path(str(key_only))
    return {"good": good, "junk": junk, "key_only": key_only, "missing": d / "nope.pem"}


def _config(section: str, value: str):
    keys, path = TARGETS[section]
    return parse_config({**PLAIN, section: {**keys, path[0]: value}}, env={})


@pytest.mark.parametrize("section", sorted(TARGETS))
def test_every_tls_target_accepts_a_private_ca_bundle(section, pem):
    cfg = _config(section, str(pem["good"]))
    assert str(getattr(getattr(cfg, section), TARGETS[section][1][0])) == str(pem["good"])


@pytest.mark.parametrize("section", sorted(TARGETS))
@pytest.mark.parametrize(
    "bad, why",
    [
        ("missing", "file not found"),
        ("junk", "does not load as a PEM CA bundle"),
        ("key_only", "holds no PEM certificate"),
    ],
)
def test_a_trust_anchor_that_is_not_a_ca_bundle_is_one_line_naming_the_field(section, bad, why, pem):
    with pytest.raises(ConfigError) as e:
        _config(section, str(pem[bad]))
    field = f"{section}.{TARGETS[section][1][0]}"
    assert len(e.value.problems) == 1 and e.value.problems[0].startswith(field + ":"), e.value.problems
    assert why in e.value.problems[0]
