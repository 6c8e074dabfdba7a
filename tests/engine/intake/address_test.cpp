// Address syntax for intake: valid tricky addresses pass, broken ones name the problem.
#include <gtest/gtest.h>

#include "engine/intake/address.h"

namespace kurier::engine {
namespace {

TEST(AddressProblem, AcceptsValidAddresses) {
  for (const char* a : {"user@example.com", "first.last+tag@sub.example.co.uk", "\"john doe\"@example.com",
                        "\"a\\\"b\"@example.com", "o'brien@example.ie", "x@xn--mller-kva.de", "jürgen@müller.de",
                        "a_b-c=d@e-f.example"}) {
    EXPECT_EQ(address_problem(a), std::nullopt) << a;
  }
}

TEST(AddressProblem, RejectsBrokenAddresses) {
  for (const char* a : {"", "plainaddress", "@example.com", "user@", "user@localhost", ".user@example.com",
                        "user.@example.com", "us..er@example.com", "user@exa mple.com", "user@-example.com",
                        "user@example..com", "user@[127.0.0.1]", "us er@example.com", "\"unterminated@example.com",
                        "user@example.com\r\nBcc: x@y.z"}) {
    EXPECT_NE(address_problem(a), std::nullopt) << a;
  }
  EXPECT_NE(address_problem(std::string(65, 'a') + "@example.com"), std::nullopt);
  EXPECT_EQ(address_problem(std::string(64, 'a') + "@example.com"), std::nullopt);
  EXPECT_NE(address_problem("a@" + std::string(250, 'b') + ".com"), std::nullopt);
}

TEST(DomainOf, LowerCasesTheDomainOnly) {
  EXPECT_EQ(domain_of("Anna@Example.COM"), "example.com");
  EXPECT_EQ(normalize_address("Anna@Example.COM"), "Anna@example.com");
  EXPECT_EQ(domain_of("\"a@b\"@c.test"), "c.test");
  EXPECT_EQ(domain_of("nodomain"), "");
}

}  // namespace
}  // namespace kurier::engine
