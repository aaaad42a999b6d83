"""The testing kit: running omnibot for tests, replay and the benchmark.

Services as tasks of this process or as child processes, free ports, the sandbox (in this process
or as its own) and a client of its control API, the environment a child reads its settings from,
and a channel set up against the sandbox. A tool, above the services: no service imports it.
"""
