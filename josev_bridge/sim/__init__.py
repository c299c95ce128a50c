"""A simulated charge-controller MCU in its own process: the serial side on a pty, an OCPPLAB-style
HTTP control API to drive it, and an independent model of which OCPP condition edges each command
causes (the truth the bridge is tested against).
"""
