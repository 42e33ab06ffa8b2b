"""``--web.config.file``: TLS, basic auth and response headers in the Prometheus exporter-toolkit format.

The same YAML the Go exporters read (``tls_server_config``, ``http_server_config``,
``basic_auth_users`` with bcrypt hashes), so one file serves a whole fleet of exporters.
Like the Go toolkit, the file (and the certificate files it names) is re-read when it
changes, without a restart: a bad file is an error at start, and afterwards a bad edit is
logged and the last good configuration stays in force.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import ssl
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from ..config.files import MAX_ECHO, FileProblem, YamlProblem, load_yaml, read_regular_file

log = logging.getLogger(__name__)

TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "client_allowed_sans",
    "prefer_server_cipher_suites",
)
HTTP_KEYS = ("headers", "http2")
# The headers the Go toolkit lets a web config set; anything else is refused there too.
ALLOWED_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's client_auth_type values Python's ssl module can honour. RequestClientCert and
# RequireAnyClientCert accept a certificate without verifying it, which OpenSSL through
# Python cannot express; they are refused with a pointer to the verifying equivalents.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# Go's TLS 1.2 cipher suite names and their OpenSSL spelling. TLS 1.3 suites are not
# configurable, in Go as here.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
WEB_CONFIG_LIMIT = 1024 * 1024  # bytes: a web config is a few lines and some bcrypt hashes
RELOAD_CHECK_INTERVAL = 1.0  # seconds between looks at the files' modification times
AUTH_CACHE_SIZE = 256  # verified (user, password) pairs kept, so bcrypt runs once per pair
BCRYPT_WORKERS = 2  # threads for bcrypt, apart from the pool that renders /metrics
BCRYPT_QUEUE = 8  # bcrypt checks running or waiting; beyond, a request is answered 503 without one


class WebConfigError(ValueError):
    """A web config that cannot be used; the message names the file and every bad field."""


@dataclass(frozen=True)
class WebConfig:
    """One parsed web config: what the server enforces until the file changes."""

    ssl_context: ssl.SSLContext | None = None
    client_allowed_sans: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, bytes] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # the files this config was read from, watched for changes

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None


def parse_web_config(path: str) -> WebConfig:
    """Read and check ``path``; raises :class:`WebConfigError` listing every problem."""
    try:
        doc = load_yaml(read_regular_file(path, WEB_CONFIG_LIMIT)) or {}
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read the web config: {exc.strerror or exc}") from None
    except FileProblem as exc:
        raise WebConfigError(f"{path}: the web config {exc}") from None
    except YamlProblem as exc:
        raise WebConfigError(f"{path}: web config refused: {exc}") from None
    except RecursionError:
        raise WebConfigError(f"{path}: not readable YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise WebConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise WebConfigError(f"{path}: must be a mapping with {', '.join(TOP_KEYS)}")
    base = Path(path).parent
    problems: list[str] = []
    _unknown(doc, TOP_KEYS, "", problems)
    tls = _section(doc, "tls_server_config", problems)
    http = _section(doc, "http_server_config", problems)
    _unknown(tls, TLS_KEYS, "tls_server_config.", problems)
    _unknown(http, HTTP_KEYS, "http_server_config.", problems)
    headers = _headers(http, problems)
    users = _users(doc, problems)
    context, sans, files = _tls(tls, base, problems) if tls else (None, (), ())
    if problems:
        raise WebConfigError(f"{path}: invalid web config:\n  - " + "\n  - ".join(map(_shortened, problems)))
    return WebConfig(context, sans, headers, users, (path, *files))


def _shortened(problem: str) -> str:
    return problem if len(problem) <= MAX_ECHO + 200 else problem[: MAX_ECHO + 200] + "..."


def _unknown(section: Mapping[str, Any], known: tuple[str, ...], prefix: str, problems: list[str]) -> None:
    for key in section:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown field; known: {', '.join(known)}")


def _section(doc: Mapping[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        problems.append(f"{key}: must be a mapping")
        return {}
    return value


def _headers(http: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        problems.append("http_server_config.headers: must be a mapping of header name to value")
        return {}
    allowed = {h.lower(): h for h in ALLOWED_HEADERS}
    out = {}
    for name, value in headers.items():
        canonical = allowed.get(str(name).lower())
        if canonical is None:
            problems.append(f"http_server_config.headers.{name}: cannot be set; allowed: {', '.join(ALLOWED_HEADERS)}")
        elif not isinstance(value, str) or "\n" in value or "\r" in value:
            problems.append(f"http_server_config.headers.{name}: must be a one-line string")
        else:
            out[canonical] = value
    if "http2" in http and not isinstance(http["http2"], bool):
        problems.append("http_server_config.http2: must be true or false (this exporter serves HTTP/1.1)")
    return out


def _users(doc: Mapping[str, Any], problems: list[str]) -> dict[str, bytes]:
    users = doc.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        problems.append("basic_auth_users: must be a mapping of user name to bcrypt hash")
        return {}
    out = {}
    for user, hashed in users.items():
        # The hash is not secret, but is never echoed: a pasted password would be.
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            problems.append(
                f"basic_auth_users.{user}: must be a bcrypt hash ($2y$…, 60 characters), "
                "e.g. from `htpasswd -nBC 10 \"\" | tr -d ':'`"
            )
        else:
            out[str(user)] = hashed.encode()
    return out


def _tls(
    tls: Mapping[str, Any], base: Path, problems: list[str]
) -> tuple[ssl.SSLContext | None, tuple[str, ...], tuple[str, ...]]:
    def path_of(key: str) -> str | None:
        value = tls.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            problems.append(f"tls_server_config.{key}: must be a file path")
            return None
        return str(base / value)  # relative paths are relative to the web config, as in Go

    cert, key, ca = path_of("cert_file"), path_of("key_file"), path_of("client_ca_file")
    if cert is None or key is None:
        problems.append("tls_server_config: needs both cert_file and key_file")
        return None, (), ()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # Go's default
    for bound in ("min_version", "max_version"):
        if bound in tls:
            version = TLS_VERSIONS.get(str(tls[bound]))
            if version is None:
                problems.append(f"tls_server_config.{bound}: {tls[bound]!r} is not one of {', '.join(TLS_VERSIONS)}")
            elif bound == "min_version":
                context.minimum_version = version
            else:
                context.maximum_version = version
    auth = str(tls.get("client_auth_type") or "NoClientCert")
    if auth in UNSUPPORTED_CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: {auth} (a certificate without verification) is not "
            "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
        )
    elif auth not in CLIENT_AUTH:
        problems.append(f"tls_server_config.client_auth_type: {auth!r} is not one of {', '.join(CLIENT_AUTH)}")
    else:
        context.verify_mode = CLIENT_AUTH[auth]
        if auth != "NoClientCert" and ca is None:
            problems.append(f"tls_server_config.client_ca_file: required with client_auth_type {auth}")
    suites = tls.get("cipher_suites") or []
    if suites:
        unknown = [s for s in suites if s not in CIPHER_SUITES]
        if unknown:
            problems.append(
                f"tls_server_config.cipher_suites: {', '.join(map(str, unknown))} not supported; "
                f"known: {', '.join(CIPHER_SUITES)}"
            )
        else:
            context.set_ciphers(":".join(CIPHER_SUITES[s] for s in suites))
    sans = tls.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        problems.append("tls_server_config.client_allowed_sans: must be a list of names")
        sans = []
    elif sans and context.verify_mode == ssl.CERT_NONE:
        problems.append("tls_server_config.client_allowed_sans: needs a client_auth_type that verifies certificates")
    for key_name, name in (("cert_file", cert), ("key_file", key), ("client_ca_file", ca)):
        kind = _not_a_regular_file(name)
        if kind:
            problems.append(f"tls_server_config.{key_name}: {name} is {kind}, not a regular file")
            return None, (), ()
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"tls_server_config.cert_file/key_file: cannot load {cert} with {key}: {_reason(exc)}")
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"tls_server_config.client_ca_file: cannot load {ca}: {_reason(exc)}")
    files = tuple(p for p in (cert, key, ca) if p is not None)
    return context, tuple(sans), files


def _not_a_regular_file(path: str | None) -> str | None:
    """What ``path`` is when it exists and is no regular file (OpenSSL would block on a FIFO); else None."""
    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: OpenSSL's own error says so
    if stat.S_ISREG(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a special file"


def _reason(exc: OSError | ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or exc)


def peer_san_allowed(peercert: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """True when ``allowed`` is empty or the verified client certificate names one of them."""
    if not allowed:
        return True
    names = {value for _kind, value in (peercert or {}).get("subjectAltName", ())}
    return bool(names & set(allowed))


class WebConfigSource:
    """The current web config, re-read when its file or a certificate file changes.

    ``current()`` is cheap: it looks at the files' modification times at most once a second.
    """

    def __init__(
        self, path: str, *, monotonic: Callable[[], float] = time.monotonic, gate: BcryptGate | None = None
    ) -> None:
        self.path = path
        self._gate = gate
        self._monotonic = monotonic
        self._config = parse_web_config(path)  # a bad file at start is the caller's error
        self._stamp = self._stamps(self._config.files)
        self._next_check = monotonic() + RELOAD_CHECK_INTERVAL
        self._auth = BasicAuth(self._config.users, gate=gate)

    def current(self) -> WebConfig:
        now = self._monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_INTERVAL
            self._reload_if_changed()
        return self._config

    @property
    def auth(self) -> BasicAuth:
        self.current()
        return self._auth

    def reread(self) -> None:
        """Read the file now, changed or not (SIGHUP); a bad file is logged and the last good one stays."""
        self._next_check = self._monotonic() + RELOAD_CHECK_INTERVAL
        self._reload_if_changed(force=True)

    def _reload_if_changed(self, *, force: bool = False) -> None:
        stamp = self._stamps(self._config.files)
        if stamp == self._stamp and not force:
            return
        self._stamp = stamp
        try:
            config = parse_web_config(self.path)
        except WebConfigError as exc:
            log.error("web config not reloaded; the last good one stays in force", extra={"error": str(exc)})
            return
        self._config = config
        self._stamp = self._stamps(config.files)
        self._auth = BasicAuth(config.users, gate=self._gate)
        log.info("web config reloaded", extra={"file": self.path, "tls": config.tls, "users": len(config.users)})

    @staticmethod
    def _stamps(files: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
        out = []
        for name in files:
            try:
                st = os.stat(name)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)


class BcryptGate:
    """Where bcrypt runs: a small thread pool of its own, and a cap on the checks running or waiting.

    bcrypt is slow on purpose (tens of ms a check). In the thread pool that renders
    ``/metrics`` and the status page, a few hundred wrong passwords would queue ahead of every
    scrape; here they queue only behind each other, and beyond ``limit`` a check is refused at
    once (the request is answered 503) instead of being queued. ``pending`` counts the checks
    handed to the pool and not yet done, even those whose request has gone away.
    """

    def __init__(
        self,
        *,
        workers: int = BCRYPT_WORKERS,
        limit: int = BCRYPT_QUEUE,
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> None:
        self.limit = limit
        self.pending = 0
        self._workers = workers
        self._checkpw = checkpw
        self._pool: ThreadPoolExecutor | None = None

    async def check(self, password: bytes, hashed: bytes) -> bool | None:
        """bcrypt's verdict, or None when ``limit`` checks are already running or waiting."""
        if self.pending >= self.limit:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="bcrypt")
        self.pending += 1
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._checkpw, password, hashed)
        future.add_done_callback(self._done)
        return await asyncio.shield(future)  # a request that goes away leaves the check counted until it ends

    def _done(self, _future: asyncio.Future[bool]) -> None:
        self.pending -= 1


BCRYPT_GATE = BcryptGate()  # one for the process: a reloaded web config keeps the same cap


class BasicAuth:
    """Checks ``Authorization: Basic`` credentials against bcrypt hashes, in constant time.

    An unknown user costs the same bcrypt as a known one (a fixed decoy hash). Pairs that
    were verified are kept, under a keyed digest, so a scrape every few seconds does not pay
    bcrypt's deliberate slowness each time; failures are never kept, so a flood of wrong
    passwords cannot push the real scraper's entry out.
    """

    def __init__(self, users: Mapping[str, bytes], *, gate: BcryptGate | None = None) -> None:
        self.users = dict(users)
        self.gate = gate if gate is not None else BCRYPT_GATE
        self._key = os.urandom(32)
        self._decoy = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(rounds=10)) if users else b""
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def verified(self, user: str, password: str) -> bool:
        """True when this pair was verified before (cheap: no bcrypt, fine on the event loop)."""
        digest = self._digest(user, password)
        if digest in self._verified:
            self._verified.move_to_end(digest)
            return True
        return False

    async def verify(self, user: str, password: str) -> bool | None:
        """The pair's verdict; None when the gate is full (answer "busy", not "wrong")."""
        if self.verified(user, password):
            return True
        hashed = self.users.get(user)
        ok = await self.gate.check(password.encode(), hashed if hashed is not None else self._decoy)
        if ok is None:
            return None
        if ok and hashed is not None:
            self._remember(self._digest(user, password))
            return True
        return False

    def check(self, user: str, password: str) -> bool:
        """Blocking (bcrypt): call it off the event loop. The same verdict as :meth:`verify`, without the gate."""
        if self.verified(user, password):
            return True
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed if hashed is not None else self._decoy) and hashed is not None
        if ok:
            self._remember(self._digest(user, password))
        return ok

    def _digest(self, user: str, password: str) -> bytes:
        return hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()

    def _remember(self, digest: bytes) -> None:
        self._verified[digest] = None
        if len(self._verified) > AUTH_CACHE_SIZE:
            self._verified.popitem(last=False)
