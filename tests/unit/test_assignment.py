"""Rendezvous assignment of partitions to replicas."""

from omnibot.shared.partitions import assignment


def test_every_partition_has_exactly_one_owner_and_they_spread() -> None:
    members = ["a", "b", "c"]
    shares = [assignment("chat.inbound", 32, members, m) for m in members]
    assert set().union(*shares) == set(range(32))
    assert sum(len(s) for s in shares) == 32
    assert all(len(s) >= 4 for s in shares)


def test_adding_a_member_moves_only_its_share() -> None:
    before = {m: assignment("s", 64, ["a", "b"], m) for m in ("a", "b")}
    after = {m: assignment("s", 64, ["a", "b", "c"], m) for m in ("a", "b", "c")}
    moved = (before["a"] - after["a"]) | (before["b"] - after["b"])
    assert moved == after["c"]


def test_no_members_no_partitions() -> None:
    assert assignment("s", 8, [], "a") == set()
