"""The pure core: no I/O, no threads, no clocks. Everything here is unit-testable with plain values."""
