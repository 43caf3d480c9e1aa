// SHA-256 against FIPS 180-4's published examples and coreutils' sha256sum of a fixture file.
#include <catch2/catch.hpp>

#include <string>

#include "io/sha256.hpp"
#include "test_files.hpp"

using mii::io::detail::sha256;
using mii::io::detail::sha256_hex;

TEST_CASE("sha256 gives FIPS 180-4's digests", "[hub][sha256]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1'000'000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 streamed in pieces of any size equals the digest of the whole", "[hub][sha256]") {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += char(i * 7 + i / 13);
  const std::string whole = sha256_hex(data);
  for (std::size_t piece : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u, 999u}) {
    sha256 s;
    for (std::size_t at = 0; at < data.size(); at += piece) s.update(data.substr(at, piece));
    INFO("piece " << piece);
    CHECK(s.hex_digest() == whole);
  }
  // Lengths at the padding boundaries; digests from Python's hashlib.sha256(b"x" * n).
  CHECK(sha256_hex(std::string(55, 'x')) == "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  CHECK(sha256_hex(std::string(56, 'x')) == "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  CHECK(sha256_hex(std::string(64, 'x')) == "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
}

TEST_CASE("sha256 of a fixture checkpoint is coreutils' sha256sum of it", "[hub][sha256]") {
  // sha256sum tests/fixtures/models/llama2/model.safetensors
  const std::string bytes = mii::test::read_text(std::filesystem::path(MII_SOURCE_DIR) / "tests/fixtures/models/llama2/model.safetensors");
  CHECK(sha256_hex(bytes) == "3677ba56e350f9eb12754b6ad591b30582c420209a226cacf1d0221be89fb4ac");
}
