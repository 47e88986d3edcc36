"""The one guarded outbound HTTP client: every fetch the server makes on its own goes through it.

Addresses are judged after resolution, at every connection (`addresses`, `guard`); the client
follows no redirects, bounds time and size, and speaks only in its own words (`client`, `errors`);
`requests`-based libraries are routed through it by an adapter (`adapter`). It imports nothing
from baas but config.
"""

from baas.net.adapter import GuardedAdapter, guard_session
from baas.net.addresses import ALLOW_SETTING, AddressPolicy, Verdict, judge, parse_networks
from baas.net.client import (
    MAX_URL_CHARS,
    Fetched,
    Limits,
    OutboundClient,
    policy_from_settings,
    url_problem,
)
from baas.net.errors import (
    AddressRefused,
    FetchFailed,
    FetchTimeout,
    InvalidUrl,
    OutboundError,
    PlainHttpRefused,
    ResponseTooLarge,
    UnresolvableHost,
)
from baas.net.guard import Resolver, system_resolver

__all__ = [
    "ALLOW_SETTING",
    "MAX_URL_CHARS",
    "AddressPolicy",
    "AddressRefused",
    "FetchFailed",
    "FetchTimeout",
    "Fetched",
    "GuardedAdapter",
    "InvalidUrl",
    "Limits",
    "OutboundClient",
    "OutboundError",
    "PlainHttpRefused",
    "Resolver",
    "ResponseTooLarge",
    "UnresolvableHost",
    "Verdict",
    "guard_session",
    "judge",
    "parse_networks",
    "policy_from_settings",
    "system_resolver",
    "url_problem",
]
