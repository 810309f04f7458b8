"""What nDPI's protocol and category names mean to voiplog, for every nDPI release.

nDPI names a flow with a master protocol (``STUN``, ``QUIC``, ``DNS``) and an
application protocol (``WhatsAppCall``, ``Zoom``), each possibly ``Unknown``,
and a category (``VoIP``, ``Video``...). This module turns those names into the
fields of an `AppVerdict`: voiplog's stable application name, whether the
protocol is itself a call, and whether the flow is something that is never a
call. It works on names, not ids, so one table serves every release: names a
release does not have simply never match (4.2 has neither ``TelegramVoip`` nor
``LineCall``; later releases renamed ``SkypeCall`` to ``Skype_TeamsCall``).

The rules, in order:

* the application is that of the app protocol if voiplog knows it, else that of
  the master protocol; every application listed makes calls (``call_app``);
* ``call``: a call protocol of an application (`CALL_PROTOCOLS`), or any
  protocol of a call application in the ``VoIP`` category (nDPI files Viber,
  IMO, Webex there whole, and their UDP flows are calls). Generic VoIP
  protocols (SIP, RTP, RTCP, IAX, H323, STUN...) are not an application: voiplog
  decodes them itself, so they give no app and no ``call``;
* ``excluded``: never when the app protocol is a call protocol (Snapchat
  multiplexes its calls' RTP with QUIC: ``QUIC.SnapchatCall``); else a master or
  app protocol that is never a call (`NEVER_CALLS`: QUIC, DNS, NTP, VPN tunnels,
  BitTorrent...) excludes the flow whatever the application (QUIC to WhatsApp is
  a media download, a DNS query for whatsapp.net is DNS); otherwise a category that is never a call
  (`NEVER_CALL_CATEGORIES`) excludes a flow of no call application only
  (WhatsApp's category is Chat, Zoom's is Video: neither excludes them), and not
  when the protocol is a hosting provider's address range (`HOSTING`), where
  other applications run their call relays.
"""

from __future__ import annotations

APPS: dict[str, str] = {
    # nDPI protocol name -> voiplog application
    "WhatsApp": "whatsapp",
    "WhatsAppCall": "whatsapp",
    "WhatsAppFiles": "whatsapp",
    "Telegram": "telegram",
    "TelegramVoip": "telegram",
    "Signal": "signal",
    "SignalVoip": "signal",
    "IMO": "imo",
    "Viber": "viber",
    "ViberVoip": "viber",
    "Messenger": "messenger",
    "FacebookVoip": "messenger",
    # Microsoft closed consumer Skype in May 2025: what nDPI files as Skype
    # calls (the same relays and STUN attributes) is Teams since then.
    "Skype": "skype",
    "SkypeCall": "teams",
    "Skype_Teams": "teams",
    "Skype_TeamsCall": "teams",
    "Teams": "teams",
    "Zoom": "zoom",
    "GoogleHangoutDuo": "google_meet",
    "GoogleMeet": "google_meet",
    "GoogleCall": "google_meet",
    "GoogleDuo": "google_meet",
    "Discord": "discord",
    "Snapchat": "snapchat",
    "SnapchatCall": "snapchat",
    "LINE": "line",
    "Line": "line",
    "LineCall": "line",
    "KakaoTalk": "kakaotalk",
    "KakaoTalk_Voice": "kakaotalk",
    "WeChat": "wechat",
    "QQ": "qq",
    "Botim": "botim",
    "TeamSpeak": "teamspeak",
    "Webex": "webex",
    "GoTo": "goto",
    "Fuze": "fuze",
    "TruPhone": "truphone",
    "Threema": "threema",
    "Tuenti": "tuenti",
}

CALL_PROTOCOLS = frozenset(
    {
        "WhatsAppCall",
        "TelegramVoip",
        "SignalVoip",
        "ViberVoip",
        "FacebookVoip",
        "SkypeCall",
        "Skype_TeamsCall",
        "SnapchatCall",
        "KakaoTalk_Voice",
        "GoogleHangoutDuo",
        "GoogleCall",
        "LineCall",
    }
)
"""Protocols nDPI names for an application's calls rather than the application."""

NEVER_CALLS = frozenset(
    {
        # transport and infrastructure
        "QUIC",
        "DNS",
        "MDNS",
        "LLMNR",
        "DoH_DoT",
        "DNScrypt",
        "NTP",
        "DHCP",
        "DHCPV6",
        "SSDP",
        "SNMP",
        "Syslog",
        "NetBIOS",
        "Radius",
        "Kerberos",
        "TFTP",
        "NetFlow",
        "sFlow",
        "Ookla",
        "Teredo",
        # tunnels and VPNs, whatever nDPI's category
        "WireGuard",
        "OpenVPN",
        "IPsec",
        "IPSec",
        "CiscoVPN",
        "TINC",
        "Softether",
        "Tailscale",
        "CloudflareWarp",
        "Tor",
        "HotspotShield",
        "FortiClient",
        "iCloudPrivateRelay",
        # peer-to-peer file sharing
        "BitTorrent",
        "eDonkey",
        "Gnutella",
    }
)
"""Protocols whose flows are never calls, whatever application they serve."""

NEVER_CALL_CATEGORIES = frozenset(
    {
        "VPN",
        "Game",
        "Streaming",
        "Video",
        "Music",
        "Download",
        "Download-FileTransfer-P2P",
        "FileSharing",
        "Cloud",
        "SoftwareUpdate",
        "Advertisement",
        "Mining",
    }
)
"""Categories whose flows are never calls unless a call application is named."""

HOSTING = frozenset(
    {
        "AmazonAWS",
        "Azure",
        "Microsoft",
        "GoogleCloud",
        "AliCloud",
        "Cloudflare",
        "Edgecast",
        "Cachefly",
    }
)
"""Hosting providers: nDPI knows their ranges, which also carry other apps' relays."""


def judge(master: str, app: str, category: str) -> tuple[str | None, bool, bool, bool, bool]:
    """``(app, call, call_app, excluded, call_protocol)`` for nDPI's names of one flow.

    ``call_protocol``: nDPI named the call protocol itself (`CALL_PROTOCOLS`),
    not only an application that makes calls.

    ``master`` and ``app`` are the names of nDPI's master and app protocols
    (``Unknown`` where nDPI has none), ``category`` the name of its category.
    """
    name = APPS.get(app) or APPS.get(master)
    call_protocol = app in CALL_PROTOCOLS or master in CALL_PROTOCOLS
    call = call_protocol or (name is not None and category == "VoIP")
    if app in CALL_PROTOCOLS:
        # A call protocol found inside another is a call: Snapchat multiplexes
        # its call's RTP with QUIC on one flow (nDPI's QUIC.SnapchatCall).
        excluded = False
    elif master in NEVER_CALLS or app in NEVER_CALLS:
        excluded = True
    elif name is not None or app in HOSTING or master in HOSTING:
        excluded = False
    else:
        excluded = category in NEVER_CALL_CATEGORIES
    return name, call, name is not None, excluded, call_protocol
