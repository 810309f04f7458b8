# voiplog capture daemon in a container.
#
#   docker build -t voiplog .
#   docker run -d --name voiplog-ams1 --network host \
#       --cap-drop ALL --cap-add NET_RAW --cap-add NET_ADMIN \
#       -v /etc/voiplog/ams1.toml:/etc/voiplog/pop.toml:ro \
#       -v voiplog-ams1:/var/lib/voiplog \
#       voiplog run --config /etc/voiplog/pop.toml --store db
#
# Capabilities: the daemon runs as the unprivileged user "voiplog" (uid 10001).
# It needs CAP_NET_RAW (packet sockets) and CAP_NET_ADMIN (promiscuous mode),
# and nothing else: run with --cap-drop ALL --cap-add NET_RAW --cap-add NET_ADMIN.
# Docker gives added capabilities to root only, so the image grants these two
# to the Python interpreter as file capabilities (setcap). The container must
# be given both: without them the kernel refuses to start an interpreter whose
# file capabilities it cannot grant (so even `voiplog config check` needs them;
# run that one with `--entrypoint` and a plain python image if need be).
# --network host lets it see the host's interfaces. SIGTERM (docker stop)
# closes open calls and writes their records; give it the default 10 s.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin libndpi4.2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY voiplog ./voiplog
COPY config ./config
COPY migrations ./migrations
# gcc builds the compiled hot path (Cython, fetched by pip for the build) and
# leaves with its headers once voiplog is installed; `voiplog --version` says
# what is compiled.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* /src \
    && setcap cap_net_raw,cap_net_admin+ep "$(readlink -f /usr/local/bin/python3)" \
    && useradd --system --uid 10001 --home-dir /var/lib/voiplog --create-home voiplog \
    && mkdir -p /etc/voiplog

USER voiplog
WORKDIR /var/lib/voiplog
ENV PYTHONUNBUFFERED=1
VOLUME ["/var/lib/voiplog"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["voiplog"]
CMD ["run", "--config", "/etc/voiplog/pop.toml"]
