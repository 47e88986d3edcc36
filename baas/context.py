"""The application context: what one server process holds while it runs.

Built once in the lifespan (`app.py`) and handed to every service explicitly: settings, the
database, the schema cache, service keys, the install's secret box and signing keys, revoked
sessions, runtime settings, the mailer, the guarded outbound HTTP client and the OpenID Connect
verifier that fetches through it (closing the verifier closes the client), file storage and its
cleaner, and the background job worker. Nothing here is global.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from baas.auth.crypto import SecretBox
from baas.auth.keys import KeyRing
from baas.auth.mail import Mailer
from baas.auth.oidc import OidcVerifier
from baas.auth.sessions import RevokedSessions
from baas.auth.tokens import Signer
from baas.config import Settings
from baas.db.pool import Database
from baas.errors import ApiError
from baas.net import OutboundClient
from baas.query import QueryLimits
from baas.runtime_settings import RuntimeSettings
from baas.schema.cache import SchemaCache

if TYPE_CHECKING:
    from baas.background import Background
    from baas.storage.backend import Backend
    from baas.storage.cleanup import FileCleaner

log = logging.getLogger("baas")


@dataclass
class AppContext:
    settings: Settings
    db: Database
    schema: SchemaCache
    keys: KeyRing
    box: SecretBox
    signer: Signer
    runtime: RuntimeSettings
    mailer: Mailer
    outbound: OutboundClient  # also checks URLs in runtime settings when they are saved
    oidc: OidcVerifier
    revoked: RevokedSessions = field(default_factory=RevokedSessions)
    storage: Backend = field(default=None, repr=False)  # type: ignore[assignment]
    file_cleaner: FileCleaner = field(default=None, repr=False)  # type: ignore[assignment]
    background: Background = field(default=None, repr=False)  # type: ignore[assignment]
    info: dict[str, str] = field(default_factory=dict)
    query_limits: QueryLimits = field(init=False)
    _background: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` after the response (so its duration tells the client nothing); failures
        are logged. Shutdown waits for it."""
        task = asyncio.create_task(work, name=what)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, ApiError) and exc.status == 503:  # the database is down: one line
            log.warning("%s failed: %s", task.get_name(), exc.message)
        elif exc is not None:
            log.error("%s failed", task.get_name(), exc_info=exc)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for the background work started so far."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    def __post_init__(self) -> None:
        s = self.settings
        self.query_limits = QueryLimits(
            max_length=s.max_filter_length,
            max_depth=s.max_filter_depth,
            max_nodes=s.max_filter_parts,
            max_in_list=s.max_filter_list,
            max_relation_depth=s.max_path_depth,
        )
