"""The harness's ports: ones no outgoing connection can take between pick and bind."""

from pathlib import Path

from tools.system import free_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_a_picked_port_lies_below_the_range_outgoing_connections_draw_from() -> None:
    ports = [free_port() for _ in range(20)]

    assert all(1024 <= port < _ephemeral_low() for port in ports)
    assert len(set(ports)) == len(ports), "a port handed out twice"
