from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sidecar import loader
from sidecar.errors import ConfigError
from sidecar.fields import parse_duration
from sidecar.volume.ca import LETSENCRYPT, LETSENCRYPT_STAGING
from sidecar.volume.specs import CertSpec, check_domain, parse_domains
from tests.unit.helpers import SETTINGS_BASE, load_error, make_settings, read

SECRET = "c2VjcmV0LWhtYWMta2V5LWRvLW5vdC1sb2c"


# check_domain


def test_domain_is_lower_cased_and_loses_its_trailing_dot_and_spaces():
    """Names are normalised the way certbot stores them."""
    assert check_domain("  WWW.Example.COM. ") == "www.example.com"


def test_wildcard_domain_is_rejected_with_the_reason_unless_the_challenge_is_dns():
    """HTTP-01 cannot issue wildcards: without CHALLENGE=dns the error says so."""
    assert check_domain("*.Example.com") == "*.example.com"
    message = load_error(DOMAINS="a.example.com;*.example.com,example.com")
    assert "DOMAINS: '*.example.com' is a wildcard: only CHALLENGE=dns (DNS-01) can obtain" in (
        message
    )
    assert "HTTP-01 (CHALLENGE=standalone) cannot" in message
    assert "CHALLENGE=webroot" in load_error(DOMAINS="*.example.com", CHALLENGE="webroot")


@pytest.mark.parametrize("name", ["*.com", "a.*.example.com", "**.example.com", "*example.com"])
def test_a_wildcard_is_only_a_leading_star_label_over_a_domain(name):
    """`*.` then a valid domain of two labels or more; a star anywhere else is no name."""
    with pytest.raises(ValueError, match=r"is not a valid domain name"):
        check_domain(name)


def test_an_all_numeric_name_that_is_no_ip_address_is_rejected_with_the_reason():
    """Digits in the last label make no domain name; not a valid IP address either."""
    with pytest.raises(ValueError, match=r"neither a domain name nor an IP address"):
        check_domain("192.0.2")


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "-bad.example.com",
        "bad-.example.com",
        "under_score.example.com",
        "a..example.com",
        "exa mple.com",
        "x" * 64 + ".com",
        ".".join(["a" * 63] * 4) + ".com",
        "::1",
        "",
    ],
)
def test_malformed_domain_is_rejected(name):
    """Single labels, bad hyphens, empty or over-long labels and names are not domains."""
    with pytest.raises(ValueError, match=r"is not a valid domain name"):
        check_domain(name)


@pytest.mark.parametrize("name", ["a" * 63 + ".com", "xn--bcher-kva.example", "1.example.com"])
def test_edge_of_valid_domains_is_accepted(name):
    """63-character labels, punycode and numeric leading labels are valid."""
    assert check_domain(name) == name


# parse_domains


def test_domains_split_into_certificates_named_after_their_first_domain():
    """`,` separates names of one certificate, `;` separates certificates."""
    assert parse_domains("a.com, www.a.com; b.com") == (
        CertSpec("a.com", ("a.com", "www.a.com")),
        CertSpec("b.com", ("b.com",)),
    )


def test_repeated_name_in_one_certificate_is_kept_once_in_order():
    """Duplicates (also by case) collapse; the first occurrence keeps its place."""
    assert parse_domains("a.com,www.a.com,A.com") == (CertSpec("a.com", ("a.com", "www.a.com")),)


def test_empty_groups_and_names_are_skipped():
    """Stray separators do not create empty certificates."""
    assert parse_domains(";a.com,,;;b.com;") == (
        CertSpec("a.com", ("a.com",)),
        CertSpec("b.com", ("b.com",)),
    )


def test_name_listed_in_two_certificates_is_rejected_naming_it():
    """A name may belong to one lineage only."""
    with pytest.raises(ValueError, match=r"'www.a.com' is listed in two certificates"):
        parse_domains("a.com,www.a.com;b.com,WWW.A.COM")


def test_no_domains_at_all_is_rejected_with_an_example():
    """An empty DOMAINS explains the expected format."""
    with pytest.raises(ValueError, match=r"no domain names given \(example: DOMAINS="):
        parse_domains(" ; , ")


# parse_duration


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
        (" 7D ", 604800.0),
        ("0", 0.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_duration_is_read_in_seconds(raw, seconds):
    """Plain seconds or a number with an s/m/h/d unit."""
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "abc", "-5s", "5w", "1h30m", "h"])
def test_malformed_duration_is_rejected_with_examples(raw):
    """Negative, compound and unknown units are refused, with examples of valid ones."""
    with pytest.raises(ValueError, match=r"is not a duration \(examples: 90s, 30m, 12h, 7d\)"):
        parse_duration(raw)


# load: valid environments


def test_minimal_environment_gets_the_documented_defaults():
    """Only DOMAINS, ACME_SERVER and the app are required; the rest has defaults."""
    config = read()
    assert config.domains == (CertSpec("example.com", ("example.com",)),)
    assert config.acme_server == LETSENCRYPT
    assert config.app_containers == ("web",)
    assert config.app_label is None
    assert config.email is None
    assert config.stop_timeout is None
    assert config.start_timeout == 120.0
    assert config.http01_port == 80
    assert config.http01_address == ""
    assert config.key_type == "ecdsa"
    assert config.elliptic_curve == "secp256r1"
    assert config.rsa_key_size == 2048
    assert config.check_interval == 6 * 3600.0
    assert config.check_jitter == 3600.0
    assert config.renew_before_expiry is None
    assert config.certbot_timeout == 900.0
    assert config.eab_kid is None
    assert config.eab_hmac_key is None
    assert config.log_level == "INFO"
    assert config.log_format == "text"
    assert config.config_dir == Path("/etc/letsencrypt")
    assert loader.load(SETTINGS_BASE).state_dir == Path("/etc/letsencrypt/sidecar")


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("letsencrypt", LETSENCRYPT),
        (" LetsEncrypt-Staging ", LETSENCRYPT_STAGING),
        ("https://pebble:14000/dir", "https://pebble:14000/dir"),
        ("http://ca.internal/directory", "http://ca.internal/directory"),
    ],
)
def test_acme_server_accepts_aliases_and_directory_urls(raw, url):
    """The two Let's Encrypt aliases expand; any http(s) URL is used as given."""
    assert read(ACME_SERVER=raw).acme_server == url


def test_unknown_acme_server_is_rejected_listing_the_aliases():
    """A bare word that is no alias names the choices."""
    message = load_error(ACME_SERVER="pebble")
    assert "ACME_SERVER: 'pebble' is neither letsencrypt, letsencrypt-staging nor" in message


def test_variable_names_are_case_insensitive_and_unknown_ones_ignored():
    """Keys are matched in any case; PATH and friends do not disturb validation."""
    config = loader.load(
        {"Domains": "a.example", "acme_server": "letsencrypt", "App_Label": "tls", "PATH": "/bin"}
    )
    assert config.domains.specs[0].name == "a.example"
    assert config.targets.label == "tls"


def test_durations_from_the_environment_take_units():
    """CHECK_INTERVAL=6h and friends are read as seconds."""
    config = read(
        CHECK_INTERVAL="6h",
        CHECK_JITTER="0",
        STOP_TIMEOUT="30s",
        START_TIMEOUT="2m",
        RENEW_BEFORE_EXPIRY="30d",
        CERTBOT_TIMEOUT="20m",
    )
    assert config.check_interval == 6 * 3600.0
    assert config.check_jitter == 0.0
    assert config.stop_timeout == 30.0
    assert config.start_timeout == 120.0
    assert config.renew_before_expiry == 30 * 86400.0
    assert config.certbot_timeout == 1200.0


def test_empty_stop_timeout_means_the_containers_own_and_zero_is_allowed():
    """STOP_TIMEOUT="" leaves Docker's default; 0 kills at once and is valid."""
    assert read(STOP_TIMEOUT="").stop_timeout is None
    assert read(STOP_TIMEOUT="0").stop_timeout == 0.0


@pytest.mark.parametrize(
    "variable", ["CHECK_INTERVAL", "START_TIMEOUT", "CERTBOT_TIMEOUT", "RENEW_BEFORE_EXPIRY"]
)
def test_zero_interval_or_timeout_is_rejected(variable):
    """Intervals and timeouts that must elapse cannot be zero."""
    assert f"{variable}: must be greater than zero" in load_error(**{variable: "0"})


def test_malformed_duration_variable_is_named_in_the_error():
    """The error line says which variable holds the bad duration."""
    assert "CHECK_INTERVAL: 'soon' is not a duration" in load_error(CHECK_INTERVAL="soon")


def test_app_containers_are_a_comma_list_with_leading_slashes_dropped():
    """Docker shows names as `/web`; both spellings name the same container."""
    assert read(APP_CONTAINERS=" /web, db ,").app_containers == ("web", "db")


def test_invalid_container_name_is_rejected():
    """Names Docker would not accept are refused before any API call."""
    assert "APP_CONTAINERS: 'we b' is not a valid container name" in load_error(
        APP_CONTAINERS="web,we b"
    )


@pytest.mark.parametrize(
    ("raw", "label"),
    [("com.example.tls", "com.example.tls"), (" tls=true ", "tls=true"), ("  ", None)],
)
def test_app_label_is_a_key_or_key_value_selector(raw, label):
    """APP_LABEL is trimmed; blank means none."""
    assert read(APP_LABEL=raw).app_label == label


def test_app_label_without_key_is_rejected():
    """`=value` selects nothing sensible."""
    assert "APP_LABEL: '=x' is not a label selector" in load_error(APP_LABEL="=x")


def test_app_is_required_by_name_or_label():
    """Without APP_CONTAINERS, APP_SERVICES or APP_LABEL nothing names what to stop."""
    message = load_error(APP_CONTAINERS="")
    assert "APP_CONTAINERS, APP_SERVICES or APP_LABEL: set at least one" in message


def test_label_alone_names_the_app():
    """APP_LABEL without APP_CONTAINERS is enough."""
    config = read(APP_CONTAINERS="", APP_LABEL="tls")
    assert config.app_containers == ()
    assert config.app_label == "tls"


def test_services_alone_name_the_app():
    """APP_SERVICES (Swarm services, comma-separated) is enough on its own."""
    config = read(APP_CONTAINERS="", APP_SERVICES="shop_web, shop_api")
    assert config.app_services == ("shop_web", "shop_api")


def test_a_malformed_service_name_is_rejected():
    """The rule of container names applies to service names, and the error says service."""
    assert "APP_SERVICES: 'shop web' is not a valid service name" in load_error(
        APP_SERVICES="shop web"
    )


def test_certificates_are_delivered_through_the_volume_unless_secrets_are_asked_for():
    """CERT_DELIVERY: `volume` by default, `secret` (any case) for Swarm secrets."""
    assert read().cert_delivery == "volume"
    assert read(APP_SERVICES="shop_web", CERT_DELIVERY="Secret").cert_delivery == "secret"
    assert "CERT_DELIVERY:" in load_error(CERT_DELIVERY="config")


def test_secret_delivery_needs_services_to_deliver_to():
    """Plain containers cannot get Swarm secrets: APP_SERVICES or APP_LABEL must name some."""
    message = load_error(CERT_DELIVERY="secret")
    assert "CERT_DELIVERY=secret gives the certificates to Swarm services" in message
    assert read(CERT_DELIVERY="secret", APP_LABEL="app=shop").cert_delivery == "secret"


@pytest.mark.parametrize(("raw", "email"), [("ops@example.com", "ops@example.com"), ("", None)])
def test_email_is_optional(raw, email):
    """An address is kept; an empty EMAIL means none."""
    assert read(EMAIL=raw).email == email


@pytest.mark.parametrize("raw", ["ops", "ops@example", "@example.com", "o ps@example.com"])
def test_malformed_email_is_rejected(raw):
    """Something that is not an address is refused by name."""
    assert "EMAIL:" in load_error(EMAIL=raw)
    assert "is not an e-mail address" in load_error(EMAIL=raw)


def test_enumerations_are_case_insensitive():
    """LOG_LEVEL, LOG_FORMAT and KEY_TYPE accept any case."""
    config = read(LOG_LEVEL="debug", LOG_FORMAT="JSON", KEY_TYPE="RSA")
    assert (config.log_level, config.log_format, config.key_type) == ("DEBUG", "json", "rsa")


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("LOG_LEVEL", "verbose"), ("KEY_TYPE", "ed25519"), ("ELLIPTIC_CURVE", "secp192r1")],
)
def test_values_outside_an_enumeration_are_rejected(variable, raw):
    """Only the listed choices are accepted."""
    assert f"{variable}: Input should be" in load_error(**{variable: raw})


def test_http01_port_is_read_as_a_number():
    """HTTP01_PORT=8080 (behind a port mapping) is an int."""
    assert read(HTTP01_PORT="8080").http01_port == 8080


@pytest.mark.parametrize("raw", ["0", "65536", "http"])
def test_http01_port_outside_the_tcp_range_is_rejected(raw):
    """Ports are 1..65535."""
    assert "HTTP01_PORT:" in load_error(HTTP01_PORT=raw)


def test_rsa_key_size_from_the_environment_is_accepted():
    """RSA_KEY_SIZE=4096 selects 4096-bit RSA keys."""
    assert read(KEY_TYPE="rsa", RSA_KEY_SIZE="4096").rsa_key_size == 4096


def test_missing_required_variables_are_each_named():
    """DOMAINS and ACME_SERVER are reported as required, in one line."""
    with pytest.raises(ConfigError) as caught:
        loader.load({"APP_CONTAINERS": "web"})
    message = str(caught.value)
    assert message.startswith("invalid configuration: ")
    assert "DOMAINS is required" in message
    assert "ACME_SERVER is required" in message


def test_several_errors_come_as_one_line():
    """Every bad variable is reported, joined on a single line."""
    message = load_error(DOMAINS="-bad.example.com", HTTP01_PORT="0", LOG_FORMAT="xml")
    assert "\n" not in message
    assert message.count("; ") >= 2
    assert "DOMAINS:" in message
    assert "HTTP01_PORT:" in message
    assert "LOG_FORMAT:" in message


def test_config_error_does_not_chain_the_validation_error():
    """The pydantic error (which carries input values) is not attached to the traceback."""
    with pytest.raises(ConfigError) as caught:
        loader.load({**SETTINGS_BASE, "EAB_HMAC_KEY": SECRET})
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_settings_cannot_be_changed_after_loading():
    """The model is frozen: validated once, then read only."""
    config = read()
    with pytest.raises(ValidationError):
        config.http01_port = 81


def test_load_without_a_dict_reads_the_process_environment(monkeypatch):
    """`read()` is what the CLI calls: variables come from os.environ."""
    monkeypatch.setenv("DOMAINS", "env.example.com")
    monkeypatch.setenv("ACME_SERVER", "letsencrypt-staging")
    monkeypatch.setenv("APP_LABEL", "tls")
    config = loader.load()
    assert config.domains.specs == (CertSpec("env.example.com", ("env.example.com",)),)
    assert config.ca.directory == LETSENCRYPT_STAGING


# external account binding and secrets


def test_eab_kid_and_key_are_accepted_together():
    """With both, certbot gets the key; it is held as a secret."""
    config = read(EAB_KID="kid-1", EAB_HMAC_KEY=SECRET)
    assert config.eab_kid == "kid-1"
    assert config.eab_hmac_key is not None
    assert config.eab_hmac_key.get_secret_value() == SECRET


def test_eab_key_is_read_from_its_file_and_trimmed(tmp_path):
    """EAB_HMAC_KEY_FILE (a Docker secret) supplies the key; its newline is dropped."""
    secret = tmp_path / "eab_hmac_key"
    secret.write_text(f"{SECRET}\n", encoding="utf-8")
    config = loader.load({**SETTINGS_BASE, "EAB_KID": "kid-1", "EAB_HMAC_KEY_FILE": str(secret)})
    assert config.ca.eab_options() == {"eab-kid": "kid-1", "eab-hmac-key": SECRET}


def test_eab_key_given_directly_wins_over_its_file(tmp_path):
    """EAB_HMAC_KEY set explicitly is not replaced by the file's content."""
    secret = tmp_path / "eab_hmac_key"
    secret.write_text("from-file", encoding="utf-8")
    config = read(EAB_KID="kid-1", EAB_HMAC_KEY=SECRET, EAB_HMAC_KEY_FILE=str(secret))
    assert config.eab_hmac_key is not None
    assert config.eab_hmac_key.get_secret_value() == SECRET


def test_eab_kid_without_a_key_is_rejected():
    """Half an account binding is an error."""
    assert "EAB_KID and EAB_HMAC_KEY (or EAB_HMAC_KEY_FILE) go together" in load_error(
        EAB_KID="kid-1"
    )


def test_eab_key_without_kid_is_rejected_without_showing_the_key():
    """The error explains the pairing and never prints the secret."""
    message = load_error(EAB_HMAC_KEY=SECRET)
    assert "go together" in message
    assert SECRET not in message


def test_eab_key_file_without_kid_is_rejected_without_showing_the_key(tmp_path):
    """A key read from a file is not echoed either."""
    secret = tmp_path / "eab_hmac_key"
    secret.write_text(SECRET, encoding="utf-8")
    message = load_error(EAB_HMAC_KEY_FILE=str(secret))
    assert "go together" in message
    assert SECRET not in message


def test_secret_is_not_shown_when_another_variable_is_invalid():
    """An unrelated error in the same environment does not leak the key."""
    message = load_error(EAB_KID="kid-1", EAB_HMAC_KEY=SECRET, HTTP01_PORT="eighty")
    assert "HTTP01_PORT:" in message
    assert SECRET not in message


def test_missing_secret_file_is_rejected_naming_the_file(tmp_path):
    """A *_FILE path that is no file is named, so the mount can be fixed."""
    missing = tmp_path / "nope"
    message = load_error(EAB_KID="kid-1", EAB_HMAC_KEY_FILE=str(missing))
    assert f"EAB_HMAC_KEY_FILE: '{missing}' is not a readable file" in message


def test_secret_is_masked_in_the_settings_repr():
    """Logging the settings object does not print the key."""
    config = read(EAB_KID="kid-1", EAB_HMAC_KEY=SECRET)
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


def test_ca_bundle_is_passed_to_certbot_as_requests_ca_bundle(tmp_path):
    """ACME_CA_BUNDLE (e.g. Pebble's root) becomes REQUESTS_CA_BUNDLE for certbot."""
    bundle = tmp_path / "pebble.minica.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    bundled = loader.load({**SETTINGS_BASE, "ACME_CA_BUNDLE": str(bundle)})
    assert bundled.ca.env() == {"REQUESTS_CA_BUNDLE": str(bundle)}
    assert loader.load(SETTINGS_BASE).ca.env() == {}


def test_missing_ca_bundle_is_rejected(tmp_path):
    """A bundle path that does not exist is an error, not a TLS failure later."""
    assert "ACME_CA_BUNDLE:" in load_error(ACME_CA_BUNDLE=str(tmp_path / "missing.pem"))


def test_state_dir_lives_on_the_certificate_volume(tmp_path):
    """The sidecar's own files sit in CONFIG_DIR/sidecar, shared with certbot's tree."""
    assert loader.load({**SETTINGS_BASE, "CONFIG_DIR": str(tmp_path)}).state_dir == (
        tmp_path / "sidecar"
    )


def test_reload_signal_takes_names_with_or_without_the_sig_prefix(tmp_path):
    """RELOAD_SIGNAL=hup and SIGHUP are the same; an unknown name is a clear error."""
    assert make_settings(tmp_path, RELOAD_SIGNAL="hup").targets.reload_signal == "SIGHUP"
    assert make_settings(tmp_path, RELOAD_SIGNAL="SIGUSR1").targets.reload_signal == "SIGUSR1"
    with pytest.raises(ConfigError, match="RELOAD_SIGNAL: 'SIGNOPE' is not a signal name"):
        make_settings(tmp_path, RELOAD_SIGNAL="SIGNOPE")


def test_more_names_than_the_ca_allows_is_a_configuration_error():
    """100 names per certificate at Let's Encrypt; 25 with the tlsserver and shortlived profiles."""
    hundred = ",".join(f"n{i}.example.com" for i in range(100))
    assert read(DOMAINS=hundred).domains[0].domains[-1] == "n99.example.com"
    assert "has 101 names, more than the 100" in load_error(DOMAINS=f"{hundred},x.example.com")
    error = load_error(
        DOMAINS=",".join(f"n{i}.example.com" for i in range(26)), ACME_PROFILE="tlsserver"
    )
    assert "has 26 names, more than the 25 a certificate may hold with this ACME_PROFILE" in error


def test_a_non_ascii_name_is_refused_with_its_punycode_form():
    """certbot and the lineage's directory need the ASCII form: the hint gives it."""
    error = load_error(DOMAINS="bücher.example")
    assert "'xn--bcher-kva.example'" in error


def test_no_punycode_guess_where_idna_versions_disagree():
    """straße: IDNA 2003 says strasse, 2008 xn--strae-oqa; the operator says which DNS holds."""
    error = load_error(DOMAINS="straße.example")
    assert "not an ASCII domain name" in error
    assert "strasse" not in error


def test_metrics_port_equal_to_the_challenge_port_is_refused():
    """Both on one port: the challenge server could not bind."""
    assert "METRICS_PORT: must differ from HTTP01_PORT" in load_error(METRICS_PORT="80")
