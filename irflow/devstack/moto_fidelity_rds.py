"""Corrections to moto's RDS where it behaves unlike AWS in ways irflow's RDS playbook depends on.

These patch the stand-in, never irflow: product code is written against AWS's documented behaviour.
Applied by the RDS tests (and the IAM declaration test) next to devstack.moto_fidelity.
"""

from __future__ import annotations

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _aurora_members_report_the_clusters_subnet_group()


def _aurora_members_report_the_clusters_subnet_group() -> None:
    from moto.rds.models import DBInstanceClustered

    # In AWS, DescribeDBInstances of an Aurora cluster member reports the cluster's DB subnet group
    # (with its VpcId): the subnet group belongs to the cluster and its instances live in it. moto 5.2.5
    # reports no DBSubnetGroup for a member created without DBSubnetGroupName (as Aurora members are).
    original = DBInstanceClustered.__init__

    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if getattr(self, "db_subnet_group", None) is None:
            group = self.backend.subnet_groups.get(self.cluster.db_subnet_group_name or "")
            if group is not None:
                self.db_subnet_group = group

    DBInstanceClustered.__init__ = __init__
