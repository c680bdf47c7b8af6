"""The run engine: admission, leases, execution of the graph, the event log and its projections."""
