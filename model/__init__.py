"""SpikeForge model: the spiking byte-level LM, its training, evaluation and export."""
