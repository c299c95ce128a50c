"""Real parts on demand for the tests, the demo and the benchmarks: a mosquitto broker on a free
port and the bridge as a subprocess. Nothing here is mocked; nothing here runs in production."""
