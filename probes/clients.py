"""The httpx clients journeys run on: one per TLS/proxy options, built on first use.

A journey's ``tls:`` wins over ``probes.http.tls``; journeys with neither (and no
``proxy_from_env``) share the client handed in. TLS is a property of the connection, so
different options need different connection pools, i.e. different clients.
"""

from __future__ import annotations

import httpx

from core.http import ConnectOptions, client_kwargs, needs_own_client, warn_insecure
from probes.journeys import Journey
from probes.spec import HttpJourney
from probes.transport import LeanTransport


def probe_client(options: ConnectOptions | None, *, name: str,
                 limits: httpx.Limits | None = None) -> httpx.AsyncClient:
    """A client for journeys with ``options`` (``name`` for the skip-verify warning).

    Plain http goes over the lean transport; with ``proxy_from_env`` everything goes over
    httpx's own transport, the only one httpx mounts the environment's proxies on.
    """
    kwargs = client_kwargs(options, name=name)
    if options is not None and options.proxy_from_env:
        return httpx.AsyncClient(limits=limits or httpx.Limits(), cookies=None, **kwargs)
    verify = kwargs.pop("verify")
    kwargs.pop("trust_env")
    return httpx.AsyncClient(transport=LeanTransport(limits=limits, verify=verify),
                             trust_env=False, cookies=None, **kwargs)


class ProbeClients:
    """Clients by options: the shared one for journeys without any, others built once."""

    def __init__(self, shared: httpx.AsyncClient, http: ConnectOptions | None = None, *,
                 limits: httpx.Limits | None = None) -> None:
        self.shared = shared
        self.http = http or ConnectOptions()
        self.limits = limits
        self._by_options: dict[ConnectOptions, httpx.AsyncClient] = {}
        # per journey: (its spec's tls, the client), so a run costs a dict lookup
        self._by_journey: dict[str, tuple[object, httpx.AsyncClient]] = {}

    def for_journey(self, journey: Journey) -> httpx.AsyncClient:
        """The client ``journey`` runs on."""
        tls = journey.spec.tls if isinstance(journey.spec, HttpJourney) else None
        known = self._by_journey.get(journey.name)
        if known is not None and known[0] is tls:
            return known[1]
        options = ConnectOptions(tls=tls or self.http.tls,
                                 proxy_from_env=self.http.proxy_from_env)
        client = self.shared
        if needs_own_client(options):
            name = f"journeys.{journey.name}"
            own = self._by_options.get(options)  # frozen models: equal options, one client
            if own is None:
                own = self._by_options[options] = probe_client(options, name=name,
                                                               limits=self.limits)
            warn_insecure(options.tls, name)
            client = own
        self._by_journey[journey.name] = (tls, client)
        return client

    async def aclose(self) -> None:
        """Close the clients built here (the shared one is the caller's)."""
        clients = list(self._by_options.values())
        self._by_options.clear()
        self._by_journey.clear()
        for client in clients:
            await client.aclose()
