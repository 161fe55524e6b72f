"""The one redactor, and the promise it keeps: nothing private leaves the process.

Unit tests pin each pattern and the false positives that must survive (ARNs, account ids, ISO
timestamps, SSM versions, durations, fingerprints). The property tests plant random secrets, emails,
tokens and sensitive flag values in every place a command reads (Secrets Manager, SSM, HTTP error
responses, command output, log events, exception messages) and run every command in-process against
the emulator: the raw values must appear in no stdout, stderr, log file or evidence file.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import string
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover.redact import HIDDEN, MIN_REGISTERED_LEN, REGISTERED_MASK, Redactor, sensitive_values

# --- patterns ----------------------------------------------------------------------------------------

MASKED = [
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: [REDACTED]"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA== next", "authorization=[REDACTED]"),
    ("sent bearer abcdef123456 upstream", "sent Bearer [REDACTED] upstream"),
    ('{"client_secret": "s3cr3t \\" q", "n": 1}', '{"client_secret": "[REDACTED]", "n": 1}'),
    ("{'access_token': 'abc', 'ok': 'yes'}", "{'access_token': '[REDACTED]', 'ok': 'yes'}"),
    ('{"Authorization": "Bearer xyz123456"}', '{"Authorization": "[REDACTED]"}'),
    ("x-richpanel-key: rk_live_0123", "x-richpanel-key: [REDACTED]"),
    ("X-Shopify-Access-Token: abc123", "X-Shopify-Access-Token: [REDACTED]"),
    ("GET /v1/x?api_key=abc123&page=2", "GET /v1/x?api_key=[REDACTED]&page=2"),
    ('password="two words" then', "password=[REDACTED] then"),
    ("https://admin:hunter22@db.internal:5432/x", "https://[REDACTED]@db.internal:5432/x"),
    ("token shpat_0123456789abcdef0123456789abcdef ok", "token [REDACTED:shopify-token] ok"),
    ("key sk-proj-AbC_dEf-0123456789xyz", "key [REDACTED:openai-key]"),
    ("key=sk-ABCDEFGHIJKLMNOPQRSTUVWX", "key=[REDACTED:openai-key]"),
    ("id AKIAIOSFODNN7EXAMPLE used", "id [REDACTED:aws-key] used"),
    ("id ASIAY34FZKBOKMUTVV7A", "id [REDACTED:aws-key]"),
    ("mail jane.o'doe+tag@mail.example.co.uk now", "mail [REDACTED:email] now"),
    ("to=jane@example.com, <bob@example.org>", "to=[REDACTED:email], <[REDACTED:email]>"),
    ("arn:aws:sts::123456789012:assumed-role/Release/jane@example.com", "arn:aws:sts::123456789012:assumed-role/Release/[REDACTED:email]"),
    ("call +1 415 555 0132", "call [REDACTED:phone]"),
    ("call +447911123456.", "call [REDACTED:phone]."),
    ("call (415) 555-0132 or 415.555.0132 or 1-415-555-0132", "call [REDACTED:phone] or [REDACTED:phone] or [REDACTED:phone]"),
]


@pytest.mark.parametrize("text,expected", MASKED)
def test_patterns_mask(text, expected):
    assert Redactor().text(text) == expected


SURVIVES = [
    "arn:aws:iam::123456789012:role/release",
    "arn:aws:cloudwatch:us-east-2:123456789012:alarm:rp-mw-prod-worker-error-rate",
    "account 123456789012 / us-east-2",
    "2026-01-01T03:04:05Z",
    "2026-01-01T03:04:05.123456+00:00",
    "2026-01-01 03:04:05",
    "20260101T030405Z-advance-1a2b3c4d",
    "v17 -> v18, version 1 -> 2",
    "last success 2.3h ago (max 8h); quiet for >= 15m; bake 1h30m; 0.11s",
    "sha256:dc96a067",
    "sha256 dc96a06742bf0317f4a36220b3d8e81cc6da0f55f917843a07239bd73b1abc0e",
    "epoch 1732850000123 ms, ip 192.168.100.200, port 54321",
    "secret rp-mw/prod/richpanel/api_key not found",
    "grant secretsmanager:GetSecretValue and kms:Decrypt",
    "required_secrets: 2 of 5 secrets unusable",
    "token_refresh_recent PASS last success 5m ago",
    "check the alarm rp-mw-prod-sk-worker-alarm",
    "HTTP 401 from https://api.richpanel.com: authentication/authorization failed",
    "+3 more",
    "/rp-mw/prod/outbound_allowlist_emails",
    "arn:aws:secretsmanager:us-east-2:123456789012:secret:rp-mw/prod/richpanel/api_key-*",
    "ssm:PutParameter on /cutover/x/lock: AlreadyExists",
]


@pytest.mark.parametrize("text", SURVIVES)
def test_false_positives_survive(text):
    assert Redactor().text(text) == text


def test_registered_values_are_masked_and_lines_count_too():
    r = Redactor()
    r.register("first-line-secret\nsecond-line-secret\n")
    r.register("short")  # under MIN_REGISTERED_LEN: would mask ordinary words
    assert len("short") < MIN_REGISTERED_LEN
    out = r.text("a first-line-secret b second-line-secret c short")
    assert out == f"a {REGISTERED_MASK} b {REGISTERED_MASK} c short"


def test_no_hash_of_a_registered_value_is_shown():
    """An unkeyed hash of a short value is a lookup away ("sha256:140bedbf" was "none")."""
    import hashlib

    r = Redactor()
    r.register("canary@example.com")
    out = r.text("allow=canary@example.com")
    assert out == f"allow={REGISTERED_MASK}"
    assert hashlib.sha256(b"canary@example.com").hexdigest()[:8] not in out


def test_longest_registered_value_wins():
    r = Redactor()
    r.register_all(["abcdef", "abcdefghij"])
    assert r.text("abcdefghij") == REGISTERED_MASK


def test_value_redacts_structures_and_credential_named_keys():
    r = Redactor()
    r.register("planted-secret-1")
    doc = {"token": "abc", "client_secret": "x", "secret_ids": ["planted-secret-1"], "n": 3, "ok": True,
           "nested": [{"note": "mail a@b.io"}], "detail": None}
    assert r.value(doc) == {"token": "[REDACTED]", "client_secret": "[REDACTED]",
                            "secret_ids": [REGISTERED_MASK], "n": 3, "ok": True,
                            "nested": [{"note": "mail [REDACTED:email]"}], "detail": None}


def test_sensitive_values_of_a_plan():
    from cutover.plan.load import parse_plan

    plan = parse_plan(Path(__file__).parents[1].joinpath("plans", "e2e.yaml").read_text())
    assert set(sensitive_values(plan)) == {"none", "canary@example.com", "cohort@example.com", "*"}


def test_load_plan_registers_sensitive_values(tmp_path):
    from cutover.plan.load import load_plan
    from cutover.redact import REDACTOR

    text = Path(__file__).parents[1].joinpath("plans", "e2e.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace('allow: "canary@example.com"', 'allow: "cohort-7f3a9-zz"'))
    load_plan(path)
    assert REDACTOR.text("allow=cohort-7f3a9-zz") == f"allow={REGISTERED_MASK}"


def test_registration_is_thread_safe():
    r = Redactor()
    values = [f"value-{i:04d}-xyz" for i in range(200)]

    def reg(chunk):
        for v in chunk:
            r.register(v)
            assert v not in r.text(f"<{v}>")

    threads = [threading.Thread(target=reg, args=(values[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v not in r.text(" ".join(values)) for v in values)


# --- encodings: a registered value and a PII email in the forms programs pass them on in ---------------------


def _b64(text: str, urlsafe: bool = False, pad: bool = True) -> str:
    raw = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(text.encode()).decode()
    return raw if pad else raw.rstrip("=")


def _escape_specials(text: str, fmt: str) -> str:
    """Every character that is not a letter or digit as `fmt` of its code point (\\u0040, &#64;, &#x40;)."""
    return "".join(c if c.isalnum() and c.isascii() else fmt.format(ord(c)) for c in text)


# name -> how a program passes a value on. Planted as is; none of these forms may survive.
ENCODINGS: dict[str, Callable[[str], str]] = {
    "url-quote": lambda s: quote(s, safe=""),
    "url-quote-path": quote,
    "url-quote-plus": quote_plus,
    "url-lower-hex": lambda s: re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
    "base64": _b64,
    "base64-unpadded": lambda s: _b64(s, pad=False),
    "base64-urlsafe": lambda s: _b64(s, urlsafe=True),
    "base64-urlsafe-unpadded": lambda s: _b64(s, urlsafe=True, pad=False),
    "base64-basic-auth": lambda s: _b64("svc-user:" + s),  # inside a longer encoded text, at another alignment
    "base64-in-json": lambda s: _b64(json.dumps({"k": s})),
    "json-escaped": lambda s: json.dumps(s)[1:-1],
    "json-unicode-escapes": lambda s: _escape_specials(s, "\\u{:04x}"),
    "html-escaped": html.escape,
    "html-decimal-entities": lambda s: _escape_specials(s, "&#{};"),
    "html-hex-entities": lambda s: _escape_specials(s, "&#x{:x};"),
}


def test_every_field_of_a_json_secret_is_registered():
    r = Redactor()
    r.register(json.dumps({"client_id": "public-ish-id-77", "client_secret": "cs-Planted-9x",
                           "nested": {"keys": ["leaf-Secret-01", 42, None]}, "short": "abc"}))
    out = r.text("id=public-ish-id-77 s=cs-Planted-9x leaf-Secret-01 abc")
    assert "public-ish-id-77" not in out and "cs-Planted-9x" not in out and "leaf-Secret-01" not in out
    assert out.endswith(" abc")  # under MIN_REGISTERED_LEN, as for any registered value


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_each_encoding_of_a_registered_secret_is_masked(encoding):
    r = Redactor()
    secret = 'S3cr3t/Välue+with:"odd"=chars&more@x'
    r.register(secret)
    planted = ENCODINGS[encoding](secret)
    assert planted != secret
    assert planted not in r.text(f"upstream said [{planted}] twice: {planted}.")


@settings(max_examples=300, deadline=None)
@given(secret=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=8, max_size=40)
       .filter(lambda s: s.strip() == s and sum(c.isalnum() for c in s) >= 4),
       encoding=st.sampled_from(sorted(ENCODINGS)), before=st.sampled_from(["", " ", "x=", '"', "key: ", "%22"]))
def test_no_encoding_of_a_registered_secret_survives(secret, encoding, before):
    r = Redactor()
    r.register(secret)
    planted = ENCODINGS[encoding](secret)
    assert planted not in r.text(f"{before}{planted} and again {planted}")


EMAIL_FORMS = [
    "carol%40example.com",
    "carol%2540example.com",  # encoded twice
    "carol&#64;example.com",
    "carol&#x40;example.com",
    "carol&#X40;example.com",
    "carol\\u0040example.com",
    "carol\\\\u0040example.com",  # JSON inside JSON
    "carol&#64;example&#46;com",
    "carol.o%27brien%40mail.example.co.uk",
    "jörg.müller@münchen.de",
    "josé@example.com",
    "用户@例子.广告",
    "иван@пример.рф",
    "j\\u00f6rg@m\\u00fcnchen.de",
    "j%C3%B6rg%40m%C3%BCnchen.de",
]


@pytest.mark.parametrize("email", EMAIL_FORMS)
def test_encoded_and_non_ascii_emails_are_masked(email):
    out = Redactor().text(f"reply to {email} now")
    assert out == "reply to [REDACTED:email] now"


def test_the_email_pattern_is_compiled_when_a_text_first_holds_an_at_sign():
    """Start-up: `cutover validate` prints no '@', so it does not pay for compiling the email pattern."""
    from cutover import redact

    rule = redact._IfPresent(redact._AT, redact._EMAIL._source)
    assert rule.sub("[mail]", "no at sign here") == "no at sign here" and "pattern" not in vars(rule)
    assert rule.sub("[mail]", "to a.b%40example.com") == "to [mail]" and "pattern" in vars(rule)


EMAIL_ENCODINGS = {k: v for k, v in ENCODINGS.items() if not k.startswith("base64")}  # a pattern cannot decode base64


@settings(max_examples=300, deadline=None)
@given(local=st.from_regex(r"[a-zà-öø-ÿ][a-z0-9à-öø-ÿ._+-]{1,14}[a-z0-9à-öø-ÿ]", fullmatch=True),
       domain=st.from_regex(r"[a-zà-öø-ÿ][a-z0-9à-öø-ÿ-]{1,12}[a-z0-9]\.(com|io|de|co\.uk)", fullmatch=True),
       encoding=st.sampled_from(sorted(EMAIL_ENCODINGS)), before=st.sampled_from(["", " ", "to=", "(", "<", '"']),
       after=st.sampled_from(["", " ", ".", ",", ")", ">", '"']))
def test_no_encoding_of_an_email_survives_the_patterns(local, domain, encoding, before, after):
    planted = EMAIL_ENCODINGS[encoding](f"{local}@{domain}")
    out = Redactor().text(f"{before}{planted}{after}")
    assert planted not in out and local not in out


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_SECRET_PLAIN = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12"  # no '/' or '+': masked only in context


@pytest.mark.parametrize("text", [
    f"aws_secret_access_key = {AWS_SECRET_PLAIN}",
    f"AWS_SECRET_ACCESS_KEY={AWS_SECRET_PLAIN}",
    f'"SecretAccessKey": "{AWS_SECRET_PLAIN}"',
    f"AKIAIOSFODNN7EXAMPLE {AWS_SECRET_PLAIN}",
    f"key id AKIAIOSFODNN7EXAMPLE, secret {AWS_SECRET_PLAIN}",
    f"the secret key is {AWS_SECRET_PLAIN} (rotated)",
    f"pasted {AWS_SECRET} by mistake",
    f"{AWS_SECRET}",
    f"creds:{AWS_SECRET};",
])
def test_aws_secret_access_keys_are_masked(text):
    out = Redactor().text(text)
    assert AWS_SECRET not in out and AWS_SECRET_PLAIN not in out


@pytest.mark.parametrize("text", [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # 40 hex
    "commit 3F786850E387550FDAB836ED7E6DC881DE23001B",
    "sha256 dc96a06742bf0317f4a36220b3d8e81cc6da0f55f917843a07239bd73b1abc0e",
    "arn:aws:iam::123456789012:role/service-role/CutoverOrderStatusProdRollback01",
    "arn:aws:ssm:us-east-2:123456789012:document/cutover-order-status-prod-rollback",
    "2026-01-01T03:04:05.123456+00:00 run 20260101T030405Z-advance-1a2b3c4d",
    "/cutover/order-status-prod/state v17",
    "ThisIsALongCamelCaseIdentifierName4Tests",  # 40 letters and digits, no '/' or '+'
    "evidence/20260101T030405Z-rollback-1a2b3c4d/report.json",
])
def test_what_looks_like_an_aws_secret_key_but_is_not_survives(text):
    assert Redactor().text(text) == text


# --- strategies: plausible secrets ------------------------------------------------------------------------

SECRET_CHARS = string.ascii_letters + string.digits + "-_./+=!@#$%^&*~:"


def secrets_() -> st.SearchStrategy[str]:
    # Printable, no whitespace (a stored secret is stripped), at least one letter so it is not a number.
    return st.text(SECRET_CHARS, min_size=12, max_size=40).filter(lambda s: any(c.isalpha() for c in s))


emails = st.from_regex(r"[a-z][a-z0-9._+'-]{2,18}[a-z0-9]@[a-z][a-z0-9-]{1,14}\.(com|io|net|co\.uk)", fullmatch=True)
shopify_tokens = st.from_regex(r"shpat_[0-9a-f]{32}", fullmatch=True)
openai_keys = st.from_regex(r"sk-(proj-[A-Za-z0-9_-]{24,40}|[A-Za-z0-9]{48})", fullmatch=True)
aws_keys = st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True)
phones = st.from_regex(r"\+1 [2-9][0-9]{2} [2-9][0-9]{2} [0-9]{4}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(secret=secrets_(), before=st.text(max_size=30), after=st.text(max_size=30))
def test_a_registered_secret_never_survives_in_any_text(secret, before, after):
    r = Redactor()
    r.register(secret)
    out = r.text(before + secret + after + secret)
    assert secret not in out
    assert r.value({"k": [before + secret]}) != {"k": [before + secret]}


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(emails, shopify_tokens, openai_keys, aws_keys, phones),
       before=st.sampled_from(["", " ", "x=", "to: ", "(", "<", '"']), after=st.sampled_from(["", " ", ".", ",", ")", ">", '"']))
def test_shaped_values_are_masked_without_registration(value, before, after):
    assert value not in Redactor().text(f"{before}{value}{after}")


# --- every command, planted values everywhere --------------------------------------------------------------


@dataclass
class Planted:
    secret: str  # a Secrets Manager value, sent as a header, echoed back by the upstream
    json_secret: str  # one field of a JSON secret
    flag: str  # the sensitive flag's value in the plan
    live_flag: str  # a different value someone put in SSM by hand
    email: str
    token: str
    phone: str
    aws_secret: str  # a bare AWS secret access key
    idn_email: str  # an email with non-ASCII parts

    def values(self) -> dict[str, str]:
        return dict(self.__dict__)

    def forms(self) -> dict[str, str]:
        """Every planted value, and the encoded forms of those cutover knows or recognises: the registered
        secrets in every encoding, the emails in every encoding a pattern can see through."""
        out = self.values()
        for name in ("secret", "json_secret", "flag"):
            out |= {f"{name} {enc}": f(getattr(self, name)) for enc, f in ENCODINGS.items()}
        for name in ("email", "idn_email"):
            out |= {f"{name} {enc}": f(getattr(self, name)) for enc, f in EMAIL_ENCODINGS.items()}
        return out


def _aws_secret_shaped(s: str) -> bool:
    return any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s) and bool(set(s) & set("/+"))


planted = st.builds(
    Planted,
    secret=secrets_(),
    json_secret=secrets_(),
    flag=st.one_of(secrets_(), st.lists(emails, min_size=1, max_size=3).map(",".join)),
    live_flag=st.one_of(secrets_(), emails),
    email=emails,
    token=st.one_of(shopify_tokens, openai_keys, aws_keys),
    phone=phones,
    aws_secret=st.from_regex(r"[A-Za-z0-9/+]{40}", fullmatch=True).filter(_aws_secret_shaped),
    idn_email=st.from_regex(r"[a-z]{1,6}[à-öø-ÿ][a-z]{1,6}@[a-zà-öø-ÿ]{1,8}[à-öø-ÿ]{1,3}\.(de|com|рф)", fullmatch=True),
)

# What the command gates print (one form each, as the last line of a failing program): `leak_<n>` prints
# LEAK_FORMS[n] of the planted values it is given through `env:`.
LEAK_FORMS = [
    ("secret", "url-quote"), ("secret", "base64-basic-auth"), ("json_secret", "json-unicode-escapes"),
    ("json_secret", "html-hex-entities"), ("email", "url-quote"), ("email", "html-decimal-entities"),
    ("idn_email", "json-escaped"), ("aws_secret", None),
]


class _Echo(BaseHTTPRequestHandler):
    """An upstream that leaks: every error echoes the credential it received, and the planted values,
    also encoded."""

    def log_message(self, *args):
        pass

    def _leak(self) -> str:
        p, key = self.server.planted, self.headers.get("x-api-key") or ""
        return (f"key={key} b64={_b64(key)} q={quote(key, safe='')} user={ENCODINGS['url-quote'](p.email)} "
                f"{EMAIL_ENCODINGS['json-unicode-escapes'](p.idn_email)} tok={p.token} tel={p.phone} json={p.json_secret} "
                f"aws={p.aws_secret}")

    def _reply(self, status: int, body: str, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v.encode("utf-8").decode("latin-1"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        leak = self._leak()
        path = self.path.split("?")[0]
        if path == "/ok":
            self._reply(200, leak, {"X-Echo": leak})  # bodies are never stored, even on success
        elif path == "/redirect":
            self._reply(302, leak, {"Location": f"https://u:{self.headers.get('x-api-key')}@elsewhere.example/?t={quote(leak)}"})
        elif path == "/429":
            self._reply(429, leak, {"Retry-After": "0", "X-Echo": leak})
        else:
            self._reply(int(path.strip("/") or 500), leak, {"WWW-Authenticate": f'Bearer error="{leak}"'})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        message = f"Access denied for {self._leak()}"
        self._reply(200, json.dumps({"data": None, "errors": [{"message": message, "extensions": {"code": self.server.planted.token}}]}))


@pytest.fixture(scope="module")
def upstream():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


# The shadow report misbehaving: it prints (to stderr and stdout) values the tool knows are private:
# pattern-shaped ones, and the secret another gate of the same phase reads.
LEAK_COMMAND = (
    "import os, sys\n"
    "e = os.environ\n"
    "print('Traceback (most recent call last):', e['PLANTED_PHONE'], file=sys.stderr, flush=True)\n"
    "print('user', e['PLANTED_EMAIL'], 'token', e['PLANTED_TOKEN'])\n"
    "print('phone', e['PLANTED_PHONE'])\n"
    "print('key', e['PLANTED_SECRET'])\n"
    "sys.exit(3)\n"
)
# One encoded form as the last line of a failing program (the same encoders as the unit tests above).
LEAK_FORM_COMMAND = (
    "import base64, html, json, os, sys, urllib.parse\n"
    "value, enc = os.environ['PLANTED_' + sys.argv[1].upper()], sys.argv[2]\n"
    "special = lambda s, f: ''.join(c if c.isascii() and c.isalnum() else f.format(ord(c)) for c in s)\n"
    "forms = {'url-quote': lambda s: urllib.parse.quote(s, safe=''),\n"
    "         'base64-basic-auth': lambda s: base64.b64encode(('svc-user:' + s).encode()).decode(),\n"
    "         'json-unicode-escapes': lambda s: special(s, '\\\\u{:04x}'), 'json-escaped': lambda s: json.dumps(s)[1:-1],\n"
    "         'html-hex-entities': lambda s: special(s, '&#x{:x};'), 'html-decimal-entities': lambda s: special(s, '&#{};'),\n"
    "         'none': lambda s: s}\n"
    "print('leaked', forms[enc](value))\n"
    "sys.exit(5)\n"
)
PLANTED_ENV = ["PLANTED_SECRET", "PLANTED_JSON_SECRET", "PLANTED_EMAIL", "PLANTED_IDN_EMAIL", "PLANTED_TOKEN", "PLANTED_PHONE",
               "PLANTED_AWS_SECRET"]
STUB_HOST = "https://api.leak.example"  # where the checks' urls point; the sandbox reroutes them to the upstream
TOPIC = "arn:aws:sns:us-east-2:123456789012:leak-notices"


def plan_text(p: Planted) -> str:
    """Phase `shadow` passes (reading every planted secret, writing the planted sensitive value);
    phase `canary` fails on every gate, each fed planted values."""
    q = json.dumps  # a YAML double-quoted scalar
    base, env = STUB_HOST, q(PLANTED_ENV)
    forms = "\n".join(
        f"  leak_{i}: {{type: command, run: [{q(sys.executable)}, -c, {q(LEAK_FORM_COMMAND)}, {name}, {enc or 'none'}], "
        f"env: {env}, read_only: true, timeout: 20s}}" for i, (name, enc) in enumerate(LEAK_FORMS))
    return f"""\
version: 1
name: leak
region: us-east-2
write_rate: 10
notify: {{sns_topic_arn: {TOPIC}}}
flags:
  kill: {{parameter: /leak/kill, rollback: "off"}}
  allow: {{parameter: /leak/allow, rollback: "nobody", sensitive: true, secure: true}}
  cohort: {{lambda: {{function: leak-worker, variable: LEAK_COHORT}}, rollback: "nobody", sensitive: true}}
checks:
  env_ok: {{type: env, equals: {{LEAK_MODE: "shadow"}}}}
  secrets_ok: {{type: secrets, secret_ids: [leak/api_key, leak/json]}}
  upstream_ok:
    type: http
    url: "{base}/ok"
    headers: {{x-api-key: "{{{{secret:leak/api_key}}}}", x-other: "{{{{secret:leak/json#client_secret}}}}"}}
  quiet: {{type: alarms, names: [leak-errors], quiet_for: 0s}}
  env_bad: {{type: env, equals: {{LEAK_ACTUAL: "expected-value"}}}}
  http_401: {{type: http, url: "{base}/401", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}}}
  http_403: {{type: http, url: "{base}/403", headers: {{x-api-key: "{{{{secret:leak/json#client_secret}}}}"}}}}
  http_500: {{type: http, url: "{base}/500", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}}}
  http_429: {{type: http, url: "{base}/429", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}, timeout: 5s}}
  http_redirect: {{type: http, url: "{base}/redirect", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}}}
  graphql_errors:
    type: graphql
    url: "{base}/graphql"
    query: "query {{ shop {{ name }} }}"
    headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}
  report: {{type: command, run: [{q(sys.executable)}, -c, {q(LEAK_COMMAND)}], env: {env}, timeout: 20s}}
{forms}
  writes: {{type: log_absent, log_group: /leak/worker, contains: "method=POST", window: 1h}}
  fresh: {{type: log_freshness, log_group: /leak/refresh, json_match: {{ok: true}}, max_age: 1h}}
  alarms_bad: {{type: alarms, names: [leak-firing], quiet_for: 0s}}
  denied: {{type: log_absent, log_group: /leak/denied, contains: x, window: 1h}}
  crash: {{type: log_absent, log_group: /leak/crash, contains: x, window: 1h}}
phases:
  - name: shadow
    set: {{allow: {q(p.flag)}, cohort: {q(p.flag)}}}
    gates: [env_ok, secrets_ok, upstream_ok, quiet]
  - name: canary
    set: {{kill: "on"}}
    gates: [env_ok, env_bad, http_401, http_403, http_500, http_429, http_redirect, graphql_errors, report, writes, fresh,
            alarms_bad, denied, crash, {", ".join(f"leak_{i}" for i in range(len(LEAK_FORMS)))}]
"""


def seed_emulator(emulator, p: Planted) -> None:
    import boto3

    seeder = emulator.seeder("us-east-2")
    now = datetime.now(timezone.utc)
    seeder.put_secret("leak/api_key", p.secret)
    seeder.put_secret("leak/json", json.dumps({"client_secret": p.json_secret, "owner": p.email}))
    seeder.put_parameter("/leak/kill", "off")
    seeder.put_parameter("/leak/allow", "nobody", secure=True)
    # The function's other variables are none of cutover's business, and may hold anything.
    seeder.put_function("leak-worker", {"LEAK_COHORT": "nobody", "LEAK_OTHER_KEY": p.secret, "LEAK_OWNER": p.email})
    seeder.put_alarm("leak-errors", "OK")
    seeder.put_alarm("leak-firing", "ALARM", reason=f"threshold crossed by {p.email} {p.secret}")
    seeder.put_log_group("/leak/worker")
    seeder.put_log_event("/leak/worker", f"method=POST to={p.email} key={p.secret} {p.token}", now - timedelta(minutes=3))
    seeder.put_log_group("/leak/refresh")
    seeder.put_log_event("/leak/refresh", json.dumps({"ok": False, "user": p.email, "secret": p.secret}), now - timedelta(minutes=2))
    boto3.client("sns", region_name="us-east-2", endpoint_url=emulator.endpoint).create_topic(Name=TOPIC.rsplit(":", 1)[1])


DRIFT = "<someone sets the sensitive flag by hand>"
HOLD_LOCK = "<a dead run holds the lock>"
COMMANDS = [  # (argv, expected exit code)
    (["validate"], 0),
    (["status"], 0),
    (["preflight"], 0),
    (["advance", "--dry-run"], 0),
    (["advance", "--yes", "--reason", "R"], 0),  # shadow: the planted flag value written
    (["--json", "status"], 0),
    (["preflight", "--phase", "canary", "--out-md", "OUT_MD"], 1),  # every leaky gate fails
    (["--json", "preflight", "--phase", "canary"], 1),
    (["advance", "--dry-run", "--approve", "--reason", "R"], 1),
    (["-v", "advance", "--yes", "--approve", "--reason", "R"], 1),
    ([DRIFT], None),
    (["status", "--check"], 5),
    (["--json", "status"], 0),
    (["rollback", "--dry-run"], 0),
    (["-v", "rollback", "--yes", "--reason", "R"], 0),  # old value: the one set by hand
    ([HOLD_LOCK], None),
    (["unlock", "--force", "--reason", "R"], 0),
    (["history"], 0),
    (["--json", "history"], 0),
]


def _files(folder: Path) -> dict[str, str]:
    return {str(f): f.read_text(errors="replace") for f in folder.rglob("*") if f.is_file()}


def reason_for(p: Planted) -> str:
    """What an operator pastes into --reason: PII and credentials in the forms they come in. (A Secrets
    Manager value pasted into a rollback's reason cannot be known to that process: only a gate that read
    it can register it. So the reason holds values every process can recognise: patterns, and the
    sensitive flag's declared value, registered from the plan.)"""
    email_forms = " ".join(f(p.email) for f in EMAIL_ENCODINGS.values())
    return (f"incident for {p.email} call {p.phone} | {email_forms} | {p.idn_email} {quote(p.idn_email)} | "
            f"key {p.aws_secret} | allow {p.flag} {_b64(p.flag)} {quote_plus(p.flag)} {html.escape(p.flag)}")


def _hold_lock() -> None:
    from cutover.adapters.aws import make_ports

    record = {"holder": "arn:aws:sts::123456789012:assumed-role/release/gone", "host": "elsewhere", "pid": 1,
              "command": "advance", "run_id": "deadbeef", "acquired_at": "2026-01-01T00:00:00Z", "expires_at": "2999-01-01T00:00:00Z"}
    make_ports("us-east-2", None, read_only=False).params.put("/cutover/leak/lock", json.dumps(record), overwrite=False)


def _aws_records(endpoint: str) -> dict[str, str]:
    """Every version of cutover's own parameters (state record, lock), and every SNS message: what cutover
    left in AWS besides the flags themselves (whose values are the point)."""
    import boto3

    from moto.sns.models import sns_backends

    ssm = boto3.client("ssm", region_name="us-east-2", endpoint_url=endpoint)
    out = {}
    prefix = [{"Key": "Name", "Option": "BeginsWith", "Values": ["/cutover/leak/"]}]
    for page in ssm.get_paginator("describe_parameters").paginate(ParameterFilters=prefix):
        for meta in page["Parameters"]:
            for v in ssm.get_parameter_history(Name=meta["Name"], WithDecryption=True)["Parameters"]:
                out[f"ssm {meta['Name']} v{v['Version']}"] = v["Value"]
    for i, (_, message, subject, *_) in enumerate(sns_backends["123456789012"]["us-east-2"].topics[TOPIC].sent_notifications):
        out[f"sns message {i}"] = f"{subject}\n{message}"
    return out


def run_every_command(p: Planted, base_url: str, workdir: Path) -> tuple[list[tuple[list[str], object]], dict[str, str]]:
    from typer.testing import CliRunner

    from cutover.cli.app import app
    from cutover.redact import REDACTOR

    out = workdir / "out"  # everything cutover writes (the plan file itself holds the planted flag value)
    plan_file, evidence, out_md = workdir / "phases.yaml", out / "evidence", out / "preflight.md"
    out.mkdir()
    plan_file.write_text(plan_text(p))
    env = {"LEAK_MODE": "shadow", "LEAK_ACTUAL": p.email, "CUTOVER_HTTP_STUB": base_url,  # the sandbox's rerouting
           **{f"PLANTED_{k.upper()}": getattr(p, k) for k in ("secret", "json_secret", "email", "idn_email", "token", "phone",
                                                              "aws_secret")}}
    runner = CliRunner()
    results = []
    reason = reason_for(p)
    for argv, _ in COMMANDS:
        if argv == [DRIFT]:
            from cutover.sandbox.seed import EmulatorSeeder
            from cutover.adapters.aws import make_ports

            make_ports("us-east-2", None, read_only=False).params.put("/leak/allow", p.live_flag, secure=True)
            seeder = EmulatorSeeder(os.environ["AWS_ENDPOINT_URL"], "us-east-2")
            seeder.put_environment("leak-worker", {**seeder.environment("leak-worker"), "LEAK_COHORT": p.live_flag})
            continue
        if argv == [HOLD_LOCK]:
            _hold_lock()
            continue
        REDACTOR.__init__()  # each command is its own process: nothing it did not register itself is known
        argv = [reason if a == "R" else str(out_md) if a == "OUT_MD" else a for a in argv]
        r = runner.invoke(app, ["--plan", str(plan_file), "--evidence-dir", str(evidence), *argv], env=env)
        assert r.exception is None or isinstance(r.exception, SystemExit), (argv, repr(r.exception))
        results.append((argv, r))
    return results, {**_files(out), **_aws_records(os.environ["AWS_ENDPOINT_URL"])}


def assert_never_shown(p: Planted, results, files) -> None:
    # The scenario really ran: shadow entered (the planted flag written), canary refused, rolled back.
    expected = [code for argv, code in COMMANDS if argv not in ([DRIFT], [HOLD_LOCK])]
    assert [r.exit_code for _, r in results] == expected, [(a, r.exit_code, r.stderr[-300:]) for a, r in results]
    # One report per command that writes evidence: 2 preflights, 4 advances, 2 rollbacks, status --check, unlock --force.
    reports = sorted(f.rsplit("/", 2)[-2] for f in files if f.endswith("report.json"))
    assert any(f.endswith("cutover.log.jsonl") for f in files) and len(reports) == 10, reports
    assert any("-unlock-" in r for r in reports), reports
    assert sum(k.startswith("sns message") for k in files) == 2 and sum(k.startswith("ssm /cutover/leak/state") for k in files) >= 4
    # (state versions: the advance and the rollback write two each; unlock --force touches only the lock)
    outputs = {f"{' '.join(argv)} {stream}": getattr(r, stream) for argv, r in results for stream in ("stdout", "stderr")}
    everything = {**outputs, **files}
    for name, value in p.forms().items():
        for where, text in everything.items():
            assert value not in text, f"planted {name} {value!r} appears in {where}"
    assert not [where for where, text in everything.items() if "sha256:" in text], "a hash of a value is shown"


@pytest.fixture
def leaky_aws(monkeypatch, upstream):
    """AWS failing with exception messages that echo planted values: an AccessDenied naming them, and
    an unexpected exception (a bug) carrying them."""
    from cutover.adapters.aws import CloudWatchLogs
    from cutover.errors import AwsError

    real = CloudWatchLogs.events

    def events(self, log_group, start, end, filter_pattern=""):
        p = upstream.planted
        if log_group == "/leak/denied":
            raise AwsError(f"User {p.email} with key {p.secret} is not authorized ({p.token})", code="AccessDeniedException")
        if log_group == "/leak/crash":
            raise RuntimeError(f"unexpected {p.secret} {p.json_secret} {p.email} {p.flag} {p.phone}")
        return real(self, log_group, start, end, filter_pattern)

    monkeypatch.setattr(CloudWatchLogs, "events", events)


@pytest.mark.timeout(900)  # six full scenarios, each some twenty commands, on a loaded machine
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(p=planted)
def test_planted_values_never_leave_the_process(p, emulator, aws_env, upstream, leaky_aws):
    emulator.reset()
    seed_emulator(emulator, p)
    upstream.planted = p
    with tempfile.TemporaryDirectory() as tmp:
        results, files = run_every_command(p, upstream.url, Path(tmp))
    assert_never_shown(p, results, files)


def test_every_failure_class_was_exercised(emulator, aws_env, upstream, leaky_aws, tmp_path):
    """One fixed example, checking the scenario reaches each leaky path (so the property means something)."""
    p = Planted(secret="S3cr3t-Value-0001", json_secret="Js0n-Secret-0002", flag="cohort-a@example.com,cohort-b@example.com",
                live_flag="by-hand-value-0003", email="jane.doe@example.com", token="shpat_" + "ab12" * 8, phone="+1 415 555 0132",
                aws_secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", idn_email="jörg@münchen.de")
    emulator.reset()
    seed_emulator(emulator, p)
    upstream.planted = p
    results, files = run_every_command(p, upstream.url, tmp_path)
    assert_never_shown(p, results, files)
    [pre] = [json.loads(r.stdout) for a, r in results if a[:2] == ["--json", "preflight"]]
    details = {g["check"]: g["detail"] for g in pre["gates"]}
    assert details["env_bad"] == "LEAK_ACTUAL has another value (hidden), expected 'expected-value'"
    assert "authentication/authorization failed" in details["http_401"] and "HTTP 403" in details["http_403"]
    assert "server error" in details["http_500"] and "rate limited" in details["http_429"]
    assert "redirect to https://elsewhere.example (not followed)" in details["http_redirect"]
    assert details["graphql_errors"].startswith(f"GraphQL errors: 1; first [REDACTED:shopify-token]: Access denied for key={REGISTERED_MASK}")
    assert details["report"].startswith("not run in a dry run")  # not read_only: the real advance runs it
    leaks = [details[f"leak_{i}"] for i in range(len(LEAK_FORMS))]
    assert all(d.startswith("exit 5; last output: leaked ") and "[REDACTED" in d for d in leaks), leaks
    assert details["writes"].startswith("1 matching event in the last 1h; newest at ")
    assert details["fresh"].startswith("no success within 1h in /leak/refresh")
    assert details["alarms_bad"].startswith("leak-firing in ALARM since ")
    assert details["denied"] == "access denied to log group /leak/denied (AccessDeniedException)"
    assert details["crash"] == "internal error in the log_absent check: RuntimeError"
    advanced = json.loads(next(f for name, f in files.items() if "-advance-" in name and name.endswith("report.json")
                               and '"exit_code": 1' in f and '"dry_run": false' in f))
    assert next(g for g in advanced["gates"] if g["check"] == "report")["detail"].startswith("exit 3; last output: ")
    status = [json.loads(r.stdout) for a, r in results if a == ["--json", "status"]][-1]
    allow = next(f for f in status["flags"] if f["flag"] == "allow")
    assert allow["live"] == HIDDEN and allow["declared"] == HIDDEN and allow["drift"]
    rollback = json.loads(next(f for name, f in files.items() if "-rollback-" in name and name.endswith("report.json")
                               and '"dry_run": false' in f))
    assert {"flag": "allow", "old": HIDDEN, "new": HIDDEN}.items() <= rollback["changes"][0].items()
    # The Lambda flag: as private as the SSM one, hand edit included; the function's other variables untouched.
    cohort = next(f for f in status["flags"] if f["flag"] == "cohort")
    assert cohort["live"] == HIDDEN and cohort["target"] == "leak-worker env LEAK_COHORT"
    assert {"flag": "cohort", "kind": "lambda", "old": HIDDEN, "new": HIDDEN}.items() <= rollback["changes"][1].items()
    assert emulator.seeder("us-east-2").environment("leak-worker") == {
        "LEAK_COHORT": "nobody", "LEAK_OTHER_KEY": p.secret, "LEAK_OWNER": p.email}
    # The reasons reached the record, SNS and history, redacted; the unlock's (no history row: it touches
    # only the lock) reached its evidence report, redacted too.
    history = json.loads(next(r.stdout for a, r in results if a == ["--json", "history"]))["history"]
    assert [h["command"] for h in history][-2:] == ["rollback", "rollback"]
    assert all("incident for [REDACTED:email] call [REDACTED:phone]" in h["reason"] for h in history if h["command"] == "rollback")
    assert "key [REDACTED:aws-secret-key]" in history[-1]["reason"]
    unlock = next(f for name, f in files.items() if "-unlock-" in name and name.endswith("report.json"))
    assert "incident for [REDACTED:email]" in unlock and "key [REDACTED:aws-secret-key]" in unlock
    assert any("reason: incident for [REDACTED:email]" in v for k, v in files.items() if k.startswith("sns message"))


# --- how sensitive flag values are displayed ------------------------------------------------------------------


def test_status_and_confirmations_show_public_values_and_label_the_rollback_value(e2e):
    """`sha256:140bedbf` was "none" and `sha256:684888c0` was "*": nobody could confirm "everyone"."""
    import dataclasses

    from cutover.commands import orchestrator

    public = dataclasses.replace(e2e.plan.flag("allow"), public_values=("none", "*"))
    plan = dataclasses.replace(e2e.plan, flags=tuple(public if f.name == "allow" else f for f in e2e.plan.flags))
    st = orchestrator.status(e2e(plan=plan, dry_run=True))
    assert "    allow = none (rollback value) (declared none)" in st.lines  # public
    assert "    cohort = (sensitive, rollback value) (declared (sensitive)) in e2e-worker env E2E_COHORT" in st.lines
    assert {r["flag"]: r["live"] for r in st.data["flags"]}["allow"] == "none"  # machine fields carry no label
    for _ in ("shadow", "canary", "full"):
        assert orchestrator.advance(e2e(plan=plan), approve=True, reason="go").exit_code == 0
    st = orchestrator.status(e2e(plan=plan, dry_run=True))
    assert "    allow = * (declared *)" in st.lines and "    cohort = (sensitive) (declared (sensitive)) in e2e-worker env E2E_COHORT" in st.lines
    asked = []
    out = orchestrator.rollback(e2e(plan=plan, confirm=lambda summary: asked.append(summary) or True), reason="incident")
    assert "allow (/e2e/allow): * -> none (rollback value)" in out.lines
    assert "cohort (e2e-worker env E2E_COHORT): (sensitive) -> (sensitive, rollback value)" in out.lines
    assert "allow (/e2e/allow): * -> none (rollback value)" in asked[0]
    assert {(c["flag"], c["old"], c["new"]) for c in out.data["changes"]} >= {("allow", "*", "none"), ("cohort", HIDDEN, HIDDEN)}
    assert "canary@example.com" not in "\n".join(out.lines + asked) + json.dumps(out.data)


# --- logs and exception messages ---------------------------------------------------------------------------


def test_log_events_are_redacted_on_the_console_and_in_the_file(tmp_path, capsys):
    from cutover import logs
    from cutover.redact import REDACTOR

    secret = "log-planted-Secret-77"
    REDACTOR.register(secret)
    log_file = tmp_path / "cutover.log.jsonl"
    logs.configure(verbose=True, log_file=log_file)
    logs.get().warning(f"upstream said {secret}", who="jane@example.com", headers={"Authorization": "Bearer abcdef123456"},
                       note=["token=shpat_0123456789abcdef"])
    err = capsys.readouterr().err
    text = log_file.read_text()
    for leaked in (secret, "jane@example.com", "abcdef123456", "shpat_0123456789abcdef"):
        assert leaked not in err and leaked not in text
    assert json.loads(text.splitlines()[-1])["headers"] == {"Authorization": "[REDACTED]"}


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_exception_never_shows_its_message(e2e, tmp_path, monkeypatch, verbose):
    from typer.testing import CliRunner

    from cutover.commands import orchestrator
    from cutover.cli.app import app
    from cutover.redact import REDACTOR

    secret = "exc-planted-Secret-88"
    REDACTOR.register(secret)

    def boom(rt):
        raise RuntimeError(f"failed for jane@example.com with {secret}")

    monkeypatch.setattr(orchestrator, "history", boom)
    argv = ["--plan", str(Path(__file__).parents[1] / "plans" / "e2e.yaml"), "--evidence-dir", str(tmp_path)]
    r = CliRunner().invoke(app, [*argv, *(["-v"] if verbose else []), "history"])
    assert r.exit_code == 4 and "internal error: RuntimeError in history" in r.stderr
    for stream in (r.stdout, r.stderr):
        assert secret not in stream and "jane@example.com" not in stream


def test_a_logged_exception_is_redacted(tmp_path, capsys):
    from cutover import logs
    from cutover.redact import REDACTOR

    REDACTOR.register("exc-secret-value-99")
    logs.configure(verbose=True, log_file=tmp_path / "log.jsonl")
    try:
        raise RuntimeError("boom exc-secret-value-99 jane@example.com")
    except RuntimeError:
        logs.get().exception("failed")
    out = capsys.readouterr().err + (tmp_path / "log.jsonl").read_text()
    assert "Traceback" in out  # plain frames, no local variables
    assert "exc-secret-value-99" not in out and "jane@example.com" not in out
