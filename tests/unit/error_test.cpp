// Tests of quorum's error category.
#include <quorum/error.hpp>

#include <catch2/catch.hpp>

TEST_CASE("quorum errors convert to std::error_code with actionable messages", "[error]") {
  std::error_code ec = quorum::errc::not_leader;
  CHECK(ec.category().name() == std::string("quorum"));
  CHECK(ec.message().find("leader") != std::string::npos);
  CHECK(ec != std::error_code{});
  for (int value = 1; value <= 23; ++value) {
    CHECK(std::error_code(value, quorum::error_category()).message() != "unknown quorum error");
  }
}
