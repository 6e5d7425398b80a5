"""What the live Raft view (/debug/raft) costs a serving member: off, on with no page open, on with a page open."""
