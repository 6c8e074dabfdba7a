// The only way kurier code includes Asio. Boost 1.74's coroutine support with
// g++ 12 needs <utility> before <boost/asio.hpp>; Asio itself is compiled once,
// in common/asio_impl.cpp (BOOST_ASIO_SEPARATE_COMPILATION).
// Include this from .cpp files only: it is heavy, and the machine has 2 cores.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

namespace kurier {
namespace asio = boost::asio;
using boost::system::error_code;
}  // namespace kurier
