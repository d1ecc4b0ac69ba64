"""SpikeForge benchmarks: scripts that print tables (and JSON with ``--json``), run by ``all``."""
