"""The MIDI device service: MIDI ports as Matrix rooms (``org.edgehs.midi`` events).

``python -m devices.midi -c devices.yaml`` runs it; ``export`` / ``replay`` convert a room's
history to and from Standard MIDI Files. See devices/midi/README.md.
"""
