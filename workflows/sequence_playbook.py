"""The attack-sequence playbook (being written): a GuardDuty AttackSequence finding's parent incident."""

from __future__ import annotations

from workflows.triage_playbook import TriagePlaybook


class SequencePlaybook(TriagePlaybook):
    name = "attack-sequence"
