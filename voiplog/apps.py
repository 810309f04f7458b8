"""Which application classifier the flow classifier gets, from the configuration.

``[media_sessions] app_classifier = "ndpi"`` binds the system's libndpi; when it
cannot be loaded (not installed, a release no adapter knows), voiplog runs on
with its built-in traits and says once, in words an operator can act on, that
app calls whose media shows no RTP header will be missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiplog.flows import AppClassifier, FlowSettings


@dataclass(frozen=True, slots=True)
class AppClassifierChoice:
    classifier: AppClassifier | None
    description: str
    """What names applications, e.g. ``ndpi 4.2.0`` or ``builtin traits``."""
    warning: str | None = None
    """Said once at start when the configured classifier could not be had."""


def open_app_classifier(settings: FlowSettings) -> AppClassifierChoice:
    """The application classifier ``settings`` ask for, or the reason there is none."""
    if not settings.enabled:
        return AppClassifierChoice(None, "off (media sessions disabled)")
    if settings.app_classifier == "off":
        return AppClassifierChoice(None, "off")
    if settings.app_classifier == "builtin":
        return AppClassifierChoice(None, "builtin traits")
    from voiplog.ndpi import NdpiUnavailable, load

    try:
        classifier = load()
    except NdpiUnavailable as exc:
        return AppClassifierChoice(
            None,
            "builtin traits (nDPI unavailable)",
            f"app classifier: {exc}; running with the built-in traits only: app calls "
            "(WhatsApp, Telegram, Zoom...) whose media shows no RTP header will be missed "
            '(install libndpi, or set media_sessions.app_classifier = "builtin")',
        )
    return AppClassifierChoice(classifier, classifier.name)
