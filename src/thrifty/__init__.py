"""Thrifty: a self-hosted, OpenAI-compatible LLM gateway that cuts spend and proves every saving.

The library surface (the same pipeline the server runs, in-process)::

    from thrifty import Gateway, Principal, config_from_env

    async with Gateway(config_from_env()) as gw:
        answer = await gw.chat({"model": "gpt-4o-mini", "messages": [...]}, Principal("acme"))
"""

from thrifty.config import Config, config_from_dict, config_from_env, load_config
from thrifty.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    ThriftyError,
    UpstreamError,
)
from thrifty.gateway import Gateway
from thrifty.keys.principal import Principal
from thrifty.pipeline.outcome import Completed
from thrifty.pipeline.streaming import ChatStream

__all__ = [
    "AuthenticationError",
    "ChatStream",
    "Completed",
    "Config",
    "ConfigError",
    "Gateway",
    "InvalidRequestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Principal",
    "RateLimitError",
    "ServiceUnavailableError",
    "ThriftyError",
    "UpstreamError",
    "config_from_dict",
    "config_from_env",
    "load_config",
]
