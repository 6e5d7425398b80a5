"""The flags of `gateway start`, parsed and refused as etcd 3.4's cobra/pflag command line does.

etcd prints the same help and the same refusals (`Error: unknown flag: --x`, then the usage, then the
message again), so scripts and operators moving between the two see no difference but the program name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from pyetcd.flagvalues import parse_go_bool, parse_go_duration

PROGRAM = "pyetcd"

START_FLAGS_HELP = """\
      --discovery-srv string        DNS domain used to bootstrap initial cluster
      --discovery-srv-name string   service name to query when using DNS discovery
      --endpoints strings           comma separated etcd cluster endpoints (default [127.0.0.1:2379])
  -h, --help                        help for start
      --insecure-discovery          accept insecure SRV records
      --listen-addr string          listen address (default "127.0.0.1:23790")
      --retry-delay duration        duration of delay before retrying failed endpoints (default 1m0s)
      --trusted-ca-file string      path to the client server TLS CA file for verifying the discovered \
endpoints when discovery-srv is provided.
"""

START_USAGE = f"Usage:\n  {PROGRAM} gateway start [flags]\n\nFlags:\n{START_FLAGS_HELP}"
START_HELP = f"start the gateway\n\n{START_USAGE}"

GATEWAY_USAGE = f"""\
Usage:
  {PROGRAM} gateway [command]

Available Commands:
  start       start the gateway

Flags:
  -h, --help   help for gateway

Use "{PROGRAM} gateway [command] --help" for more information about a command.
"""
GATEWAY_HELP = f"gateway related command\n\n{GATEWAY_USAGE}"

DEFAULT_ENDPOINTS = ("127.0.0.1:2379",)
DEFAULT_LISTEN_ADDR = "127.0.0.1:23790"
DEFAULT_RETRY_DELAY = 60.0


class FlagError(Exception):
    """A command line pflag refuses; cobra prints it, the usage, and exits 1."""


@dataclass(slots=True)
class GatewayFlags:
    """`gateway start`'s settings, with etcd's defaults."""

    listen_addr: str = DEFAULT_LISTEN_ADDR
    endpoints: list[str] = field(default_factory=lambda: list(DEFAULT_ENDPOINTS))
    retry_delay: float = DEFAULT_RETRY_DELAY
    discovery_srv: str = ""
    discovery_srv_name: str = ""
    insecure_discovery: bool = False
    trusted_ca_file: str = ""
    help: bool = False
    _endpoints_set: bool = False

    def set(self, name: str, value: str) -> None:
        """Assign one flag from its text, as pflag's Value.Set would."""
        if name == "endpoints":
            # pflag's string slice: CSV; the first use replaces the default, later uses append.
            items = next(csv.reader([value])) if value else []
            self.endpoints = (self.endpoints if self._endpoints_set else []) + items
            self._endpoints_set = True
        elif name == "retry-delay":
            self.retry_delay = parse_go_duration(value)
        elif name == "insecure-discovery":
            self.insecure_discovery = _parse_bool(value)
        elif name == "help":
            self.help = _parse_bool(value)
        else:
            setattr(self, name.replace("-", "_"), value)


STRING_FLAGS = frozenset({"listen-addr", "endpoints", "retry-delay", "discovery-srv", "discovery-srv-name",
                          "trusted-ca-file"})
BOOL_FLAGS = frozenset({"insecure-discovery", "help"})


def _parse_bool(value: str) -> bool:
    try:
        return parse_go_bool(value)
    except ValueError:
        raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax') from None


def parse_start_flags(argv: list[str]) -> GatewayFlags:
    """pflag's parse of `gateway start`'s arguments; positional arguments are ignored, as etcd ignores them."""
    flags = GatewayFlags()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            break  # everything after it is a positional argument
        if not arg.startswith("-") or arg == "-":
            continue  # `gateway start` takes no arguments and etcd ignores any given
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if not name or name[0] in "-=":
                raise FlagError(f"bad flag syntax: {arg}")
            shown = f"--{name}"
        else:
            letter, rest = arg[1], arg[2:]
            if letter != "h":
                raise FlagError(f"unknown shorthand flag: '{letter}' in {arg}")
            if rest and not rest.startswith("="):
                raise FlagError(f"unknown shorthand flag: '{rest[0]}' in {arg}")
            name, value, has_value = "help", rest[1:], "=" if rest else ""
            shown = "-h"
        if name in BOOL_FLAGS:
            value = value if has_value else "true"
        elif name in STRING_FLAGS:
            if not has_value:
                if index >= len(argv):
                    raise FlagError(f"flag needs an argument: {shown}")
                value = argv[index]
                index += 1
        else:
            raise FlagError(f"unknown flag: {shown}")
        try:
            flags.set(name, value)
        except (ValueError, csv.Error) as err:
            raise FlagError(f'invalid argument "{value}" for "{_flag_display(name)}" flag: {err}') from None
    return flags


def _flag_display(name: str) -> str:
    return "-h, --help" if name == "help" else f"--{name}"
