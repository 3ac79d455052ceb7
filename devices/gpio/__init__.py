"""The GPIO device service: gpiozero inputs and outputs of each board as a Matrix room.

See devices/gpio/README.md for the configuration, the events and the commands.
"""
