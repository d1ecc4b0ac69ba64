"""SpikeForge model: spiking byte-level LMs composed of blocks, their training, evaluation and
export (see model/README.md)."""
