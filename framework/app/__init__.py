"""The command-line applications: spiketune, its sweeps and jobs, compare, ui, server, slurm."""
