"""Real programs run as local processes on 127.0.0.1: for `make demo`, tests and benchmarks."""
