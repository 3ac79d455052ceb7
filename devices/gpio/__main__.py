"""``python -m devices.gpio -c devices.yaml``: run the GPIO device service."""

from devices.common.runner import run_service
from devices.gpio.device import GpioService

if __name__ == "__main__":
    raise SystemExit(run_service(GpioService))
