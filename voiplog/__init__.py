"""voiplog: ISP-side VoIP call-detail logging."""

__version__ = "0.1.0"
