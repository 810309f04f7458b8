"""The composition root: what a POP config asks for, built and wired together.

Strategy: the protocol packages (packet, sip, rtp, calls, flows, cdr, enrich)
are sans-IO and take their collaborators as arguments; the commands and the
daemon take theirs from here. What cannot be built from the configuration as
given (a lease file that is not there, a MaxMind database that does not read)
raises `WiringError`, naming the key or the file, which `voiplog` commands turn
into exit status 2 and the daemon into a log line: nothing here prints or exits.
"""

from __future__ import annotations

from voiplog.errors import UsageError


class WiringError(UsageError):
    """A configured collaborator that cannot be built; the message names the key or file."""


def build_enricher(cfg, networks):
    """The enricher of a loaded config's [enrichment] section; `WiringError` naming a
    source that cannot be read."""
    from voiplog.wiring.enrichment import EnrichmentSourceError
    from voiplog.wiring.enrichment import build_enricher as build

    try:
        return build(cfg, networks)
    except EnrichmentSourceError as exc:
        raise WiringError(str(exc)) from None
