"""The composition root: CLI, settings, the local broker, the node and the decider."""
