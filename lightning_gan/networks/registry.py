"""A name -> network class registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

NETWORKS: dict[str, type[nn.Module]] = {}

T = TypeVar("T", bound=type[nn.Module])


def register_net(name: str) -> Callable[[T], T]:
    """Class decorator that registers a network under ``name``."""

    def decorator(cls: T) -> T:
        old = NETWORKS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(
                f"network {name!r} is already registered to {old.__module__}.{old.__qualname__}, not {cls.__module__}"
            )
        NETWORKS[name] = cls
        return cls

    return decorator


def build_net(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the network registered as ``name`` with keyword arguments ``kwargs``."""
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; registered networks: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name](**kwargs)
