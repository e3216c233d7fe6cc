"""Near-real-time detection on CloudTrail events: Sigma rules, Python rules and windowed rules, indexed by
event source and name, producing findings in irflow's own model (source irflow-detection)."""
