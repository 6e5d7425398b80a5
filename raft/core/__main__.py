"""`python -m raft.core` prints the role transition table that the core follows."""

from raft.core.roles import describe_role_transitions

print(describe_role_transitions())
