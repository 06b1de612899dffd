// Tests of the core's value types.
#include <quorum/raft/types.hpp>

#include <catch2/catch.hpp>

using namespace quorum::raft;

TEST_CASE("shared bytes share one copy and compare by content", "[raft][types]") {
  shared_bytes a("hello");
  shared_bytes b = a;
  CHECK(a.data() == b.data());
  CHECK(a == shared_bytes("hello"));
  CHECK_FALSE(a == shared_bytes("hellp"));
  CHECK(shared_bytes().empty());
  CHECK(a.to_string() == "hello");
}

TEST_CASE("a quorum is a strict majority of voters", "[raft][types]") {
  CHECK(membership{{1}}.quorum() == 1);
  CHECK(membership{{1, 2}}.quorum() == 2);
  CHECK(membership{{1, 2, 3}}.quorum() == 2);
  CHECK(membership{{1, 2, 3, 4}}.quorum() == 3);
  CHECK(membership{{1, 2, 3, 4, 5}}.quorum() == 3);
}
