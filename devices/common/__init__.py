"""The device services' application service kit: devices.yaml, the AS server edgehs pushes
to, intents acting as virtual users, registrations, the DeviceService base and its runner.

Talks to edgehs only over HTTP; never imports ``edgehs``.
"""

from devices.common.appservice import AppServiceServer, EventHandler
from devices.common.config import (
    AppServiceConfig,
    DeviceConfigError,
    HomeserverConfig,
    Section,
    ServiceConfig,
    load_service_config,
)
from devices.common.device import DeviceService, PowerGate, ServiceEvents
from devices.common.intent import HomeserverClient, HomeserverError, Intent
from devices.common.runner import run_service, sd_notify

__all__ = [
    "AppServiceConfig",
    "AppServiceServer",
    "DeviceConfigError",
    "DeviceService",
    "EventHandler",
    "HomeserverClient",
    "HomeserverConfig",
    "HomeserverError",
    "Intent",
    "PowerGate",
    "Section",
    "ServiceConfig",
    "ServiceEvents",
    "load_service_config",
    "run_service",
    "sd_notify",
]
