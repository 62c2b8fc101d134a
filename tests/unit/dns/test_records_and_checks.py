"""Pure parts of DNS: building records, zone text, comparing answers, parsing name servers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailprov.errors import DkimKeyUnusable, InvalidValue, SelectorInvalid
from mailprov.rules.dkim import check_selector, generate, record_from_pem
from mailprov.rules.dnscheck import Answer, Outcome, compare, mx_coverage, parse_nameserver
from mailprov.rules.dnsrecords import DkimPublication, Record, RecordInput, build, to_zone

BASE = RecordInput(
    domain="example.test",
    hostname="mail.example.test",
    ttl=300,
    ipv4=["192.0.2.1"],
    ipv6=["2001:db8::1"],
    mx_priority=10,
    spf="v=spf1 mx -all",
    dmarc_policy="quarantine",
    dmarc_rua="",
    dmarc_ruf="",
    mta_sts_mode="enforce",
    mta_sts_max_age=86400,
    mta_sts_mx=[],
    tls_rpt_rua="",
    web_host="",
    ports={"smtp": 25, "submission": 587, "submissions": 465, "imaps": 993, "pop3s": 995},
)


def _record(rs: object, check: str) -> Record:
    return next(r for r in rs.records if r.check == check)  # type: ignore[attr-defined]


def test_every_name_is_absolute() -> None:
    """All record names (and name targets) end with a dot."""
    rs = build(BASE)
    assert all(r.name.endswith(".") for r in rs.records)
    assert _record(rs, "dns.mx").value == "10 mail.example.test."


def test_srv_records_follow_rfc_6186() -> None:
    """Submissions/IMAPS/POP3S point at the host; cleartext IMAP and POP3 are '0 0 0 .'."""
    by_name = {r.name: r.value for r in build(BASE).records if r.rtype == "SRV"}
    assert by_name["_submissions._tcp.example.test."] == "0 1 465 mail.example.test."
    assert by_name["_submission._tcp.example.test."] == "10 1 587 mail.example.test."
    assert by_name["_imaps._tcp.example.test."] == "0 1 993 mail.example.test."
    assert by_name["_pop3s._tcp.example.test."] == "10 1 995 mail.example.test."
    assert by_name["_imap._tcp.example.test."] == "0 0 0 ."
    assert by_name["_pop3._tcp.example.test."] == "0 0 0 ."


def test_mta_sts_id_changes_with_the_policy() -> None:
    """The _mta-sts id is stable for one policy and changes when the policy changes."""
    one, same = build(BASE), build(BASE)
    other = build(replace(BASE, mta_sts_mode="testing"))
    assert one.policy_id == same.policy_id
    assert one.policy_id != other.policy_id
    assert _record(other, "dns.mta_sts.txt").value == f"v=STSv1; id={other.policy_id}"
    assert "mode: testing" in other.mta_sts_policy


def test_long_txt_is_split_into_255_byte_strings() -> None:
    """A 2048-bit DKIM record is written as several quoted strings of at most 255 bytes."""
    record = generate("rsa-2048").record
    rs = build(replace(BASE, dkim=[DkimPublication("s1", record, "active")]))
    line = next(
        line for line in to_zone(rs, header="t").splitlines() if line.startswith("s1._domainkey")
    )
    strings = line.split("( ", 1)[1].rsplit(" )", 1)[0].split('" "')
    assert len(strings) == 2
    assert all(len(s.strip('"')) <= 255 for s in strings)
    assert "".join(s.strip('"') for s in strings) == record


def test_names_outside_the_zone_are_commented() -> None:
    """A mail host in another domain: its A/AAAA/TLSA lines are comments, not zone data."""
    rs = build(replace(BASE, hostname="mx.provider.test"))
    zone = to_zone(rs, header="t")
    assert "; mx.provider.test. 300 IN A 192.0.2.1" in zone
    assert not [ln for ln in zone.splitlines() if ln.startswith("mx.provider")]


def test_dmarc_and_tls_rpt_values() -> None:
    """DMARC carries the policy and report addresses; TLS-RPT defaults to postmaster@."""
    rs = build(replace(BASE, dmarc_policy="reject", dmarc_rua="mailto:d@example.test"))
    assert _record(rs, "dns.dmarc").value == "v=DMARC1; p=reject; rua=mailto:d@example.test"
    assert _record(rs, "dns.tls_rpt").value == "v=TLSRPTv1; rua=mailto:postmaster@example.test"


class TestCompare:
    """compare(): ok, missing, wrong and unknown."""

    spf = Record("example.test.", "TXT", "v=spf1 mx -all", "dns.spf", 300)

    def test_ok_ignores_other_txt(self) -> None:
        """Other TXT records at the name do not disturb the SPF check."""
        answer = Answer(Outcome.ANSWER, ("google-site-verification=x", "v=spf1 mx -all"))
        assert compare(self.spf, answer).status == "ok"

    def test_missing(self) -> None:
        """No SPF among the TXT records is 'missing' with finding dns.spf_missing."""
        result = compare(self.spf, Answer(Outcome.ANSWER, ("hello",)))
        assert (result.status, result.finding) == ("missing", "dns.spf_missing")

    def test_two_spf_records_are_wrong(self) -> None:
        """Two SPF records are an error for receivers, so the check says wrong."""
        result = compare(self.spf, Answer(Outcome.ANSWER, ("v=spf1 mx -all", "v=spf1 a -all")))
        assert (result.status, result.finding) == ("wrong", "dns.spf.multiple")

    def test_failed_is_unknown(self) -> None:
        """A timeout is unknown, never missing."""
        assert compare(self.spf, Answer(Outcome.FAILED, detail="timeout")).status == "unknown"

    def test_nxdomain_is_missing(self) -> None:
        """NXDOMAIN is a definite answer: missing."""
        assert compare(self.spf, Answer(Outcome.NXDOMAIN)).status == "missing"

    def test_dkim_compares_key_not_spacing(self) -> None:
        """A DKIM record with other spacing and no k= tag matches the same RSA key."""
        want = Record(
            "s._domainkey.example.test.", "TXT", "v=DKIM1; k=rsa; p=ABC", "dns.dkim.selector", 1
        )
        assert compare(want, Answer(Outcome.ANSWER, ("v=DKIM1;p=ABC",))).status == "ok"
        assert compare(want, Answer(Outcome.ANSWER, ("v=DKIM1; p=XYZ",))).status == "wrong"

    def test_cname_may_be_address_records(self) -> None:
        """autoconfig served by A records instead of a CNAME is ok."""
        want = Record(
            "autoconfig.example.test.", "CNAME", "mail.example.test.", "dns.autoconfig", 1
        )
        addresses = Answer(Outcome.ANSWER, ("192.0.2.1",))
        assert compare(want, Answer(Outcome.NODATA), address_answer=addresses).status == "ok"


def test_mx_coverage_wildcards() -> None:
    """MTA-STS mx patterns: exact names and one-label wildcards cover MX hosts; others do not."""
    answer = Answer(Outcome.ANSWER, ("10 mail.example.test.", "20 b.backup.test."))
    assert (
        mx_coverage("example.test", ["mail.example.test", "*.backup.test"], answer).status == "ok"
    )
    result = mx_coverage("example.test", ["mail.example.test"], answer)
    assert (result.status, result.finding) == ("wrong", "dns.mta_sts.mx_not_covered")


@pytest.mark.parametrize(
    ("raw", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("[::1]:5353", "::1", 5353),
        ("::1", "::1", 53),
    ],
)
def test_parse_nameserver(raw: str, host: str, port: int) -> None:
    """IP, IP:PORT, [IPv6]:PORT and bare IPv6 are accepted."""
    ns = parse_nameserver(raw)
    assert (ns.address, ns.port) == (host, port)


@pytest.mark.parametrize("raw", ["ns.example.test", "127.0.0.1:x", "127.0.0.1:70000", "[::1]x"])
def test_parse_nameserver_rejects(raw: str) -> None:
    """Names, bad ports and malformed brackets are refused with invalid-value."""
    with pytest.raises(InvalidValue):
        parse_nameserver(raw)


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True))
def test_valid_selectors_round_trip(selector: str) -> None:
    """Every single DNS label of lower-case letters, digits and inner hyphens is a selector."""
    assert check_selector(selector) == selector


@given(
    st.text(min_size=1, max_size=70).filter(
        lambda s: not all(c.isascii() and (c.isalnum() or c == "-") for c in s)
    )
)
def test_selectors_with_other_characters_fail(raw: str) -> None:
    """Any character besides letters, digits and hyphens makes a selector invalid."""
    with pytest.raises(SelectorInvalid):
        check_selector(raw)


def test_key_of_the_wrong_algorithm_is_refused() -> None:
    """An Ed25519 key in a file the state lists as RSA is refused, naming the file."""
    pem = generate("ed25519").private_pem
    with pytest.raises(DkimKeyUnusable, match=r"/k/s1\.private"):
        record_from_pem(pem, path="/k/s1.private", algorithm="rsa-2048")


def test_keypair_repr_hides_the_private_key() -> None:
    """A KeyPair's repr never shows the private key."""
    pair = generate("ed25519")
    assert "PRIVATE" not in repr(pair)
