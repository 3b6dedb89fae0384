"""Google credentials for the gcloud backends: a token, a key file, or Application Default.

Credentials are loaded on first use, off the event loop (``google.auth.default`` may probe
the metadata server for seconds), and every secret they hold is registered for redaction
before anything can print it: a key file's private key, client secret and refresh token,
and each access token as it is minted. Every failure to look becomes a
:class:`~core.errors.BackendError` whose message is scrubbed.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import requests
from google.api_core import exceptions as api_exceptions
from google.oauth2 import service_account

from core import redact
from core.errors import BackendError

T = TypeVar("T")

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# secrets a google-auth JSON file may hold (service account, authorized user, external account)
_FILE_SECRETS = ("private_key", "private_key_id", "client_secret", "refresh_token")
_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----", re.DOTALL)


def _register_file_secrets(info: dict[str, Any]) -> None:
    values = [str(info[k]) for k in _FILE_SECRETS if isinstance(info.get(k), str)]
    for pem in list(values):
        body = _PEM_BODY.search(pem)
        if body:  # the key's base64 alone, as it would show in a log line cut at newlines
            values.append("".join(body.group(1).split()))
    redact.register(*values)


def _from_info(info: dict[str, Any],
               path: str) -> tuple[google.auth.credentials.Credentials, str | None]:
    """Credentials of the two key-file types readygate loads itself (google-auth's generic
    loader is deprecated for files it cannot vouch for)."""
    kind = info.get("type")
    if kind == "service_account":
        creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES)
        return creds, info.get("project_id")
    if kind == "authorized_user":
        user = google.oauth2.credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, SCOPES)
        return user, info.get("quota_project_id")
    raise BackendError(f"credentials_file {path} is of type {kind!r}: readygate loads "
                       "service_account and authorized_user files; for others point "
                       "GOOGLE_APPLICATION_CREDENTIALS at it (Application Default Credentials)")


class TimedRequest(google.auth.transport.requests.Request):
    """google-auth's transport for token requests, never waiting longer than ``timeout_s``
    (its default is 120 s, far past any check's deadline)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self.timeout_s
        return super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]


class GcloudAuth:
    """One backend's credentials and project, loaded once and shared by its clients."""

    def __init__(self, *, project_id: str | None = None, credentials_file: str | None = None,
                 token: str | None = None,
                 credentials: google.auth.credentials.Credentials | None = None,
                 timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._project = project_id
        self._file = credentials_file
        self._token = token
        self._credentials = credentials  # given directly: tests' AnonymousCredentials
        self._lock = threading.Lock()

    def source(self) -> str:
        """Where the credentials come from, for messages (never their content)."""
        if self._credentials is not None:
            return "given credentials"
        if self._token is not None:
            return "token"
        if self._file is not None:
            return f"credentials_file {self._file}"
        return "Application Default Credentials"

    def load(self) -> tuple[google.auth.credentials.Credentials, str]:
        """(credentials, project id); blocking: call from a thread."""
        with self._lock:
            if self._credentials is None:
                self._credentials, found = self._find()
                self._project = self._project or found
            if not self._project:
                raise BackendError(f"no Google Cloud project: {self.source()} names none; set "
                                   "project_id")
            return self._credentials, self._project

    def _find(self) -> tuple[google.auth.credentials.Credentials, str | None]:
        if self._token is not None:
            return google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
                token=self._token), None
        with google_errors("Google credentials"):
            if self._file is not None:
                try:
                    info = json.loads(Path(self._file).expanduser().read_text())
                except (OSError, ValueError) as exc:
                    raise BackendError(f"credentials_file {self._file} is not readable JSON: "
                                       f"{type(exc).__name__}") from None
                if not isinstance(info, dict):
                    raise BackendError(f"credentials_file {self._file} is not a JSON object")
                _register_file_secrets(info)
                creds, project = _from_info(info, self._file)
            else:
                creds, project = google.auth.default(scopes=SCOPES)
        return creds, project

    async def credentials(self) -> tuple[google.auth.credentials.Credentials, str]:
        """(credentials, project id), loaded on first use."""
        return await asyncio.to_thread(self.load)

    async def bearer(self) -> str | None:
        """A current access token (refreshed when stale); None for anonymous credentials."""
        def fresh() -> str | None:
            creds, _ = self.load()
            if isinstance(creds, google.auth.credentials.AnonymousCredentials):
                return None
            if not creds.valid:
                with google_errors("Google credentials"):
                    creds.refresh(TimedRequest(self.timeout_s))  # type: ignore[no-untyped-call]
            token = creds.token
            if token:
                redact.register(token)
            return str(token) if token else None
        return await asyncio.to_thread(fresh)


@contextmanager
def google_errors(what: str) -> Iterator[None]:
    """Turn every failure of a Google client library into a scrubbed BackendError."""
    try:
        yield
    except BackendError:
        raise
    except api_exceptions.GoogleAPICallError as exc:
        code = exc.code if exc.code is not None else "?"
        detail = redact.scrub(str(exc.message or exc))[:300]
        refused = " (check the credentials' roles)" if code in (401, 403) else ""
        raise BackendError(f"{what} answered {code}{refused}: {detail}") from None
    except requests.RequestException as exc:
        raise BackendError(f"{what} unreachable: {type(exc).__name__}: "
                           f"{redact.scrub(str(exc))[:300]}") from None
    except google.auth.exceptions.RefreshError as exc:
        if "refresh_token" in str(exc):  # a static token answered 401: nothing to refresh with
            raise BackendError(f"{what} refused the token (401) and a token alone cannot be "
                               "refreshed: give a fresh one, or use credentials_file or "
                               "Application Default Credentials") from None
        raise BackendError(f"{what}: could not refresh the credentials: "
                           f"{redact.scrub(str(exc))[:300]}") from None
    except google.auth.exceptions.GoogleAuthError as exc:
        raise BackendError(f"{what}: {type(exc).__name__}: "
                           f"{redact.scrub(str(exc))[:300]}") from None
    except Exception as exc:
        # a library that cannot parse the answer (protobuf's ParseError, ValueError, ...):
        # garbage is an error, never "no data"
        raise BackendError(f"{what} answered something unreadable: {type(exc).__name__}: "
                           f"{redact.scrub(str(exc))[:200]}") from None


async def call(what: str, fn: Callable[[], T]) -> T:
    """``fn()`` (a blocking library call) in a thread, its failures as BackendError."""
    def run() -> T:
        with google_errors(what):
            return fn()
    return await asyncio.to_thread(run)


def endpoint(url: str | None) -> str | None:
    """The ``api_endpoint`` client option for a backend's ``url`` (None: Google's own)."""
    return url.rstrip("/") if url else None


C = TypeVar("C")


class RestApi(Generic[C]):
    """One of Google's generated (GAPIC) clients over REST, made on first use with the
    project's credentials, at ``url`` when given (a local server in tests)."""

    kind = "gcloud"
    client_class: Callable[..., C]

    def __init__(self, auth: GcloudAuth, *, url: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self.auth = auth
        self.url = endpoint(url)
        self.timeout_s = timeout_s
        self._client: C | None = None
        self._project: str | None = None

    def _api(self) -> C:
        if self._client is None:
            creds, self._project = self.auth.load()
            self._client = self.client_class(
                credentials=creds, transport="rest",
                client_options={"api_endpoint": self.url} if self.url else None)
        return self._client

    def close(self) -> None:
        """Close the client's transport, if one was made."""
        if self._client is not None:
            transport: Any = self._client.transport  # type: ignore[attr-defined]
            transport.close()
            self._client = None
