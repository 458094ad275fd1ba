"""Where a network stream address may point (README "Stream address policy").

A stream makes the platform connect wherever its address says, so an address
is a way to reach what the platform can reach. Refused, whatever the networks
allowed: this platform's own API, PostgreSQL and Redis ports. Refused by
default: link-local ranges (169.254.0.0/16, where cloud metadata services
answer, and fe80::/10). Cameras on private networks and relays on other
loopback ports stay allowed. VISIONAIRE_STREAM_ALLOW_NETWORKS (when set, only
these) and VISIONAIRE_STREAM_DENY_NETWORKS change the networks.

`address_refusal` is the one check: the API runs it when an address is given
(live.addresses.address_validate), and the stream runtime again before each
connection, on the addresses the host name resolves to then, so a name cannot
be pointed elsewhere after it passed.
(FFmpeg resolves the name once more itself, and follows HTTP redirects and HLS
segment URLs without asking: this check covers the address as given.)
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import psutil
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
THIS_MACHINE = ""  # the host of a service that listens here (a socket path, or no host given)


def _normalized(ip: IpAddress) -> IpAddress:
    # ::ffff:169.254.169.254 reaches the same place as 169.254.169.254.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def resolve(host: str) -> set[IpAddress]:
    """The addresses `host` (a name or a literal address) resolves to; empty
    when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # unknown name, or a name IDNA cannot encode
        return set()
    addresses = set()
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope (fe80::1%eth0)
        try:
            addresses.add(_normalized(ipaddress.ip_address(text)))
        except ValueError:
            continue
    return addresses


def _this_machine_addresses() -> set[IpAddress]:
    addresses = set()
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    addresses.add(_normalized(ipaddress.ip_address(entry.address.split("%", 1)[0])))
                except ValueError:
                    continue
    return addresses


def _is_this_machine(ip: IpAddress, local: set[IpAddress]) -> bool:
    return ip.is_loopback or ip.is_unspecified or ip in local


def own_services() -> list[tuple[str, str, int]]:
    """(name, host, port) of what this platform listens on: the API, and the
    PostgreSQL and Redis it uses (THIS_MACHINE as the host when they are local)."""
    services = [("API", THIS_MACHINE, settings.API_PORT)]
    params = conninfo_to_dict(settings.DATABASE_URL)
    hosts = str(params.get("host") or "").split(",")
    ports = str(params.get("port") or "5432").split(",")
    for index, host in enumerate(hosts):
        port = ports[index] if index < len(ports) else ports[-1]
        local = not host or host.startswith(("/", "@"))  # a Unix socket directory
        if port.strip().isdigit():
            services.append(("PostgreSQL", THIS_MACHINE if local else host.strip(), int(port)))
    redis = urlsplit(settings.REDIS_URL)
    if redis.scheme in ("redis", "rediss"):
        try:
            redis_port = redis.port or 6379
        except ValueError:
            redis_port = 6379
        services.append(("Redis", redis.hostname or THIS_MACHINE, redis_port))
    return services


def _own_service(ip: IpAddress, port: int, local: set[IpAddress]) -> str | None:
    for name, host, service_port in own_services():
        if port != service_port:
            continue
        if host == THIS_MACHINE:
            if _is_this_machine(ip, local):
                return name
            continue
        service_addresses = resolve(host)
        if ip in service_addresses:
            return name
        if _is_this_machine(ip, local) and any(_is_this_machine(a, local) for a in service_addresses):
            return name  # e.g. Redis at 127.0.0.1, the address 0.0.0.0 or this host's own IP
    return None


def _networks_text(networks) -> str:
    return ", ".join(str(network) for network in networks)


def address_refusal(host: str, port: int) -> str | None:
    """Why the policy refuses a connection to `host`:`port`, in words an
    operator can act on; None when it allows it. Every address the host
    resolves to must pass; a name that does not resolve passes (there is
    nothing to connect to, and the runtime checks again when it connects)."""
    addresses = resolve(host)
    if not addresses:
        return None
    local = _this_machine_addresses()
    for ip in sorted(addresses, key=lambda a: (a.version, int(a))):
        where = str(ip) if host.strip("[]") == str(ip) else f"{host} (resolving to {ip})"
        service = _own_service(ip, port, local)
        if service is not None:
            return f"{where} port {port} is this platform's own {service} port"
        denied = next((net for net in settings.STREAM_DENY_NETWORKS if ip in net), None)
        if denied is not None:
            return (
                f"{where} is in a refused network ({denied}; link-local and cloud metadata "
                "addresses are refused unless VISIONAIRE_STREAM_DENY_NETWORKS says otherwise)"
            )
        allowed = settings.STREAM_ALLOW_NETWORKS
        if allowed and not any(ip in net for net in allowed):
            return (
                f"{where} is outside the allowed networks ({_networks_text(allowed)}, "
                "set by VISIONAIRE_STREAM_ALLOW_NETWORKS)"
            )
    return None
