"""Why a server-side fetch did not happen or did not finish: one small exception tree.

Every message is written here, in our words: the URL's host, the address it resolved to and what
kind that is, a status or a limit, never text the far side sent. Callers may show it to an admin;
they translate it into their own errors before anything reaches an API client.
"""

from __future__ import annotations

from baas.net.addresses import ALLOW_SETTING, IPAddress, Verdict


class OutboundError(Exception):
    """A server-side fetch failed; `str(error)` is our own message."""


class InvalidUrl(OutboundError):
    """The URL cannot be fetched at all (scheme, syntax, credentials in it)."""


class AddressRefused(OutboundError):
    """The host resolved to an address fetches may not reach; nothing was connected."""

    def __init__(self, host: str, address: IPAddress, verdict: Verdict) -> None:
        self.host, self.address, self.verdict = host, address, verdict
        super().__init__(
            f"{host} resolves to {address}, {verdict.describe()}: server-side fetches do not "
            f"reach internal addresses unless the operator lists the network in {ALLOW_SETTING}"
        )


class PlainHttpRefused(OutboundError):
    """http:// to a host outside the operator's allowed networks; nothing was connected."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"http://{host} is plain HTTP: use https://, plain HTTP only reaches networks the "
            f"operator lists in {ALLOW_SETTING}"
        )


class UnresolvableHost(OutboundError):
    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"{host} does not resolve to any address: check the host name")


class FetchFailed(OutboundError):
    """Connecting, sending or reading failed, or the answer broke a limit."""


class FetchTimeout(FetchFailed):
    pass


class ResponseTooLarge(FetchFailed):
    pass
