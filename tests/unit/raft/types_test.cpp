// Tests of the core's value types.
#include <quorum/raft/types.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

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

TEST_CASE("a slice shares its buffer and outlives the original, and a vector is taken over",
          "[raft][types]") {
  std::byte* fill = nullptr;
  shared_bytes whole = shared_bytes::uninitialized(5, fill);
  REQUIRE(fill != nullptr);
  for (char c : std::string("hello")) *fill++ = static_cast<std::byte>(c);
  const shared_bytes ell = whole.slice(1, 3);
  CHECK(ell.data() == whole.data() + 1);
  whole = shared_bytes();
  CHECK(ell.to_string() == "ell");
  CHECK(ell.slice(3, 0).empty());
  const std::string text = "taken over";
  std::vector<std::byte> v;
  for (char c : text) v.push_back(static_cast<std::byte>(c));
  const std::byte* at = v.data();
  const shared_bytes taken(std::move(v));
  CHECK(taken.data() == at);
  CHECK(taken.to_string() == text);
}

TEST_CASE("a quorum is a strict majority of voters", "[raft][types]") {
  CHECK(membership{{1}}.quorum() == 1);
  CHECK(membership{{1, 2}}.quorum() == 2);
  CHECK(membership{{1, 2, 3}}.quorum() == 2);
  CHECK(membership{{1, 2, 3, 4}}.quorum() == 3);
  CHECK(membership{{1, 2, 3, 4, 5}}.quorum() == 3);
}
