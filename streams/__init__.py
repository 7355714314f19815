"""The ledger's write side: the pure domain, topics, the publisher, the decider."""
