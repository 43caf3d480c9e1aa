// error_message(expr): runs expr, which must throw mii::error, and returns the message so that the
// test can check it with Catch's string matchers (Contains ...); a failing check then prints the
// whole message. Anything else thrown propagates and fails the test with its own message.
#pragma once
#include <catch2/catch.hpp>

#include <string>

#include <mii/error.hpp>

namespace mii::test {

template <class F>
std::string error_message_of(F&& f, const char* expr) {
  try {
    f();
  } catch (const mii::error& e) {
    return e.what();
  }
  FAIL_CHECK("expected mii::error from: " << expr);
  return "(no mii::error was thrown)";
}

}  // namespace mii::test

#define MII_ERROR_MESSAGE(...) ::mii::test::error_message_of([&] { (void)(__VA_ARGS__); }, #__VA_ARGS__)
