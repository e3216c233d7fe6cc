"""The embedded default: a local Temporal dev server, moto as the AWS account, a demo workload.

Nothing here is used by irflow in production; it is what `make run` and the tests stand on.
"""
