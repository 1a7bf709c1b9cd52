"""Where the SDK finds droverd, the token and the CA: exactly as the drover CLI does
(cli/invocation.cc). Each setting is the explicit argument, else its `DROVER_*` variable,
else the config file `drover login` writes, else the default. Standard library only.

Config file: $DROVER_CONFIG, else $XDG_CONFIG_HOME/drover/config, else
$HOME/.config/drover/config; `key = value` lines (server, ca, token), `#` comments.
"""

import os
from typing import Mapping, NamedTuple, Optional

DEFAULT_SERVER = "localhost:7070"
DEFAULT_CA = "/etc/drover/ca.crt"


class Settings(NamedTuple):
    server: str
    token: str
    ca: str
    ca_source: str  # names where `ca` came from, for error messages


def config_path(env: Mapping[str, str] = os.environ) -> str:
    """The client config file's path; "" when no variable names one."""
    if env.get("DROVER_CONFIG"):
        return env["DROVER_CONFIG"]
    if env.get("XDG_CONFIG_HOME"):
        return os.path.join(env["XDG_CONFIG_HOME"], "drover", "config")
    if env.get("HOME"):
        return os.path.join(env["HOME"], ".config", "drover", "config")
    return ""


def read_config(path: str) -> dict:
    """The `server`, `ca` and `token` of the config file at `path`; missing or unreadable
    file: an empty dict."""
    config = {}
    if not path:
        return config
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return config
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#") or "=" not in text:
            continue
        key, value = text.split("=", 1)
        key = key.strip()
        if key in ("server", "ca", "token"):
            config[key] = value.strip()
    return config


def resolve(server: Optional[str] = None, token: Optional[str] = None, ca: Optional[str] = None,
            config_file: Optional[str] = None,
            env: Mapping[str, str] = os.environ) -> Settings:
    """The settings: each argument, else DROVER_SERVER / DROVER_TOKEN / DROVER_CA, else
    the config file (`config_file`, else config_path()), else the defaults."""
    config = read_config(config_file if config_file is not None else config_path(env))
    if not server:
        server = env.get("DROVER_SERVER") or config.get("server") or DEFAULT_SERVER
    if not token:
        token = env.get("DROVER_TOKEN") or config.get("token") or ""
    ca_source = "ca="
    if not ca:
        if env.get("DROVER_CA"):
            ca, ca_source = env["DROVER_CA"], "DROVER_CA"
        elif config.get("ca"):
            ca, ca_source = config["ca"], "the config file"
        else:
            ca, ca_source = DEFAULT_CA, "the default CA file"
    return Settings(server=server, token=token, ca=ca, ca_source=ca_source)
