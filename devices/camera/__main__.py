"""``python -m devices.camera -c devices.yaml`` runs the camera service."""

from __future__ import annotations

from devices.camera.device import CameraService
from devices.common.runner import run_service

if __name__ == "__main__":
    raise SystemExit(run_service(CameraService))
