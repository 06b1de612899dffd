// A type-erased completion handler waiting for a result: the replica's proposals and reads,
// and a queue subscription's receives, keep one until their result is known.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <system_error>
#include <utility>

namespace quorum::runtime {

template <class Result>
struct waiter {
  virtual ~waiter() = default;
  virtual void complete(std::error_code ec, Result result) = 0;
};

/** Posts the handler to its own associated executor (or `fallback`): it never runs inside
 *  the caller's current call, which may hold a strand or a lock. */
template <class Result, class Handler, class Executor>
struct waiter_for final : waiter<Result> {
  waiter_for(Handler h, Executor fallback)
      : handler(std::move(h)), fallback_executor(std::move(fallback)) {}
  void complete(std::error_code ec, Result result) override {
    auto ex = boost::asio::get_associated_executor(handler, fallback_executor);
    boost::asio::post(ex, [h = std::move(handler), ec, r = std::move(result)]() mutable {
      std::move(h)(ec, std::move(r));
    });
  }
  Handler handler;
  Executor fallback_executor;
};

/** A waiter for `handler`, falling back to `fallback`. */
template <class Result, class Handler, class Executor>
std::unique_ptr<waiter<Result>> make_waiter(Handler handler, Executor fallback) {
  return std::make_unique<waiter_for<Result, Handler, Executor>>(std::move(handler),
                                                                 std::move(fallback));
}

}  // namespace quorum::runtime
