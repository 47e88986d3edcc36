"""A `requests` transport adapter over the guarded client, for libraries that only speak
`requests` (pyfcm): mounted on their sessions, every request they make goes through
`OutboundClient.request_sync`, guard, limits and all.

Mount it with `guard_session`, which also turns redirects off (`max_redirects = 0`: a 3xx with a
Location becomes `requests.TooManyRedirects` instead of a second request). Failures become
`requests` exceptions whose message is the client's own and whose `__cause__` is the
`OutboundError`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from http.client import responses

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from baas.net.client import Fetched, OutboundClient
from baas.net.errors import FetchTimeout, InvalidUrl, OutboundError


class GuardedAdapter(BaseAdapter):
    def __init__(self, client: OutboundClient) -> None:
        super().__init__()
        self.client = client

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: object = None,
        verify: object = True,
        cert: object = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        try:
            fetched = self.client.request_sync(
                request.method or "GET",
                request.url or "",
                headers={k: _text(v) for k, v in request.headers.items()},
                content=_content(request.body),
                limits=self.client.limits.within(_seconds(timeout)),
            )
        except FetchTimeout as exc:
            raise requests.Timeout(str(exc), request=request) from exc
        except InvalidUrl as exc:
            raise requests.exceptions.InvalidURL(str(exc), request=request) from exc
        except OutboundError as exc:
            raise requests.ConnectionError(str(exc), request=request) from exc
        return self._response(request, fetched)

    def close(self) -> None:
        """Nothing: the client, and its connections, belong to whoever made it."""

    def _response(self, request: requests.PreparedRequest, fetched: Fetched) -> requests.Response:
        response = requests.Response()
        response.status_code = fetched.status
        response.reason = responses.get(fetched.status, "")
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in fetched.headers:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        response.raw = io.BytesIO(fetched.body)  # read by requests like any stream
        response.url = request.url or ""
        response.request = request
        return response


def guard_session(session: requests.Session, client: OutboundClient) -> requests.Session:
    """`session` sending through `client` only: no other adapter, no redirects, no proxies."""
    adapter = GuardedAdapter(client)
    session.adapters.clear()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.max_redirects = 0
    session.trust_env = False
    return session


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")


def _content(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise requests.RequestException("only whole bodies (bytes or text) are sent")


def _seconds(timeout: object) -> float | None:
    """requests' timeout (seconds, or a (connect, read) pair) as one bound."""
    if isinstance(timeout, int | float):
        return float(timeout)
    if isinstance(timeout, tuple):
        numbers = [float(t) for t in timeout if isinstance(t, int | float)]
        return sum(numbers) if numbers else None
    return None
