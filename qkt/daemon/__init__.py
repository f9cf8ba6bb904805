"""The long-running host of deployments: its state dir (:mod:`qkt.daemon.statedir`) and its durable
state (:mod:`qkt.daemon.journal`). Importing this package imports nothing else."""
